// Package kinds assembles the built-in stage kinds into one registry. Each
// kind lives in the package of its concern; this list is the only place that
// knows them all.
package kinds

import (
	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/realbench"
	"github.com/gsim-dev/gsim/pkg/report"
	"github.com/gsim-dev/gsim/pkg/servebench"
	"github.com/gsim-dev/gsim/pkg/shell"
	"github.com/gsim-dev/gsim/pkg/sim"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/vidur"
	"github.com/gsim-dev/gsim/pkg/workload"
)

// Registry returns a registry holding every built-in kind.
func Registry() *stage.Registry {
	return stage.NewRegistry(
		shell.Kind{},
		workload.Kind{},
		profile.Kind{},
		realbench.Kind{},
		realbench.ReplayKind{},
		servebench.Kind{},
		servebench.VLLMWorkloadKind{},
		servebench.VLLMResultKind{},
		sim.NewKind(),
		vidur.NewKind(),
		sim.NewFitKind(),
		report.CompareKind{},
		report.SweepKind{},
	)
}
