package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/progress"
	"github.com/gsim-dev/gsim/pkg/slurm"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// executorFlags choose where `gsim run` runs stages.
func executorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "executor", Value: "local", Sources: cli.EnvVars("GSIM_EXECUTOR"),
			Usage: "local (this machine) or slurm (stages as Slurm jobs, see docs/cluster.md)"},
		&cli.StringSliceFlag{Name: "slurm", Usage: "set executor.slurm.KEY=VALUE, e.g. --slurm partition=gpu --slurm time=2h (repeatable)"},
	}
}

// slurmSets turns --slurm KEY=VALUE into --set executor.slurm.KEY=VALUE, so
// the values are checked (and errors placed) like the file's own.
func slurmSets(c *cli.Command) []string {
	var out []string
	for _, s := range c.StringSlice("slurm") {
		out = append(out, "executor.slurm."+s)
	}
	return out
}

// slurmJobs is how many instances a Slurm run keeps in flight (queued or
// running jobs, and local stages) unless --jobs says otherwise.
const slurmJobs = 100

// executorOptions fits opt to the chosen executor before the request is
// checked. With Slurm, GPU stages get their GPUs from Slurm, so this
// machine's GPU slots and devices bound only the GPU stages kept here (the
// launcher does that with localGPUs, their number); it returns what
// replaces the "gpus:" line.
func executorOptions(c *cli.Command, opt *executor.Options, gpuLine string) (line string, localGPUs int, err error) {
	switch c.String("executor") {
	case "local":
		return gpuLine, 0, nil
	case "slurm":
	default:
		return "", 0, usageError{fmt.Errorf("--executor %s: want local or slurm", c.String("executor"))}
	}
	if opt.Jobs == 0 {
		opt.Jobs = slurmJobs
	}
	localGPUs = opt.Slots["gpu"]
	opt.Devices = nil
	opt.SlotDir = ""
	opt.Slots = map[string]int{"gpu": opt.Jobs}
	if gpuLine != "" {
		line = "gpus: Slurm gives each GPU job its GPUs (--gres)"
	}
	return line, localGPUs, nil
}

// useExecutor checks the store's locks, which every guarantee between gsim
// processes rests on, and starts the chosen executor. The returned
// function ends it and says what it did ("" for nothing to say).
func useExecutor(c *cli.Command, p *plan.Plan, opt *executor.Options, disp progress.Display, localGPUs int) (func() string, error) {
	if err := opt.Store.CheckLocks(); err != nil {
		return nil, err
	}
	if c.String("executor") != "slurm" {
		return func() string { return "" }, nil
	}
	// gsim processes on several machines (login nodes, users) share this
	// store: its locks must hold between machines.
	if m, err := store.MountOf(opt.Store.Root); err == nil {
		if err := m.CrossNodeLocks(); err != nil {
			return nil, &store.LockError{Root: opt.Store.Root, Msg: err.Error()}
		}
		if m.Local() {
			disp.Printf("note: the store %s is on %s (%s), which only this machine sees: jobs on other nodes cannot reach it unless the cluster is this machine", opt.Store.Root, m.Point, m.FSType)
		}
	}
	l, err := slurm.New(slurm.Config{Store: opt.Store, Plan: p, Self: opt.Gsim, Printf: disp.Printf,
		LocalJobs: runtime.NumCPU(), LocalGPUs: localGPUs})
	if err != nil {
		return nil, err
	}
	opt.Launcher = l
	return l.Close, nil
}

// jobNotes says, for each decision whose key has a job record, the job's id
// and what Slurm says of it (one squeue call for all of them).
func jobNotes(ctx context.Context, st *store.Store, ds []executor.Decision) map[string]string {
	recs := map[string]*store.Job{}
	var ids []string
	for _, d := range ds {
		if d.Key == "" || d.State == executor.UpToDate {
			continue
		}
		if j, err := st.ReadJob(d.Key); err == nil && j != nil && j.System == "slurm" {
			recs[d.ID] = j
			if j.ID != "" {
				ids = append(ids, j.ID)
			}
		}
	}
	if len(recs) == 0 {
		return nil
	}
	c := slurm.NewClient(slurm.Exec{})
	states, qerr := c.Queue(ctx, ids)
	out := map[string]string{}
	for id, j := range recs {
		switch s, ok := states[j.ID]; {
		case j.ID == "":
			out[id] = "Slurm job being submitted (" + j.Name + ")"
		case qerr != nil:
			out[id] = fmt.Sprintf("Slurm job %s (state unknown: %v)", j.ID, qerr)
		case !ok:
			out[id] = fmt.Sprintf("Slurm job %s ended (no longer in squeue); gsim run settles it", j.ID)
		default:
			w := []string{"Slurm job", j.ID, s.State}
			if s.Reason != "" && !s.Terminal() {
				w = append(w, "("+s.Reason+")")
			}
			if s.State == "RUNNING" && s.Node != "" {
				w = append(w, "on", s.Node)
			}
			out[id] = strings.Join(w, " ")
			if s.Terminal() {
				out[id] += "; gsim run settles it"
			}
		}
	}
	return out
}

// placement says, for a dry run with --executor slurm, where each instance
// would run and what its job would ask for.
func placement(c *cli.Command, p *plan.Plan, reg *stage.Registry) map[string]string {
	if c.String("executor") != "slurm" {
		return nil
	}
	out := map[string]string{}
	for _, in := range p.Instances {
		k, ok := reg.Lookup(in.Kind)
		if !ok {
			continue
		}
		q := slurm.Resolve(k.Resources(in.Params)["gpu"], in.Resources, p.Slurm)
		if !q.Job {
			out[in.ID] = "here"
			continue
		}
		args := q.SbatchArgs("", "")
		// gsim's own tracking options say nothing to the user.
		var own []string
		for _, a := range args {
			if !strings.HasPrefix(a, "--job-name") && !strings.HasPrefix(a, "--output") && !strings.HasPrefix(a, "--open-mode") &&
				!strings.HasPrefix(a, "--chdir") && a != "--no-requeue" {
				own = append(own, a)
			}
		}
		out[in.ID] = "Slurm job: sbatch " + strings.Join(own, " ")
	}
	return out
}
