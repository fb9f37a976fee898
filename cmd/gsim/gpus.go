package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v3"

	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/gpus"
	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// needsGPU tells whether any instance of p holds a GPU while it runs.
func needsGPU(p *plan.Plan, reg *stage.Registry) bool {
	for _, in := range p.Instances {
		if k, ok := reg.Lookup(in.Kind); ok && k.Resources(in.Params)["gpu"] > 0 {
			return true
		}
	}
	return false
}

// gpuSlots reads --gpus into opt: a count or a list of devices, by default
// every visible GPU (CUDA_VISIBLE_DEVICES, else nvidia-smi -L), one
// counter slot when none is visible. GPUs are looked for only when the
// plan has GPU stages; it returns the line that says which GPUs are used
// ("" when there are none to tell).
func gpuSlots(c *cli.Command, p *plan.Plan, opt *executor.Options) (string, error) {
	var visible []gpus.Device
	src := gpus.FromNone
	need := needsGPU(p, opt.Registry)
	if need {
		visible, src = gpus.Visible(os.LookupEnv, gpus.NvidiaSMI)
	}
	sel, err := gpus.Select(c.String("gpus"), visible, src)
	if err != nil {
		return "", usageError{err}
	}
	opt.Slots = map[string]int{"gpu": sel.Count}
	if sel.Devices != nil {
		opt.Devices = map[string][]gpus.Device{"gpu": sel.Devices}
	}
	if !need {
		return "", nil
	}
	return fmt.Sprintf("gpus: %s", sel.Describe(src)), nil
}
