package slurm

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// CPUs a job asks for when neither its stage nor the experiment says: a GPU
// stage's Python runner tokenizes and feeds the GPU beside it.
const (
	DefaultGPUJobCPUs = 4
	DefaultCPUJobCPUs = 1
)

// ExitFile is written by the job script with the stage's exit code, so a
// job that ended while no gsim watched can be judged even where sacct is
// unavailable and squeue has forgotten it. It is removed before adoption.
const ExitFile = ".gsim-job-exit"

// Request is what one stage instance gets: a job with these resources, or
// a local run.
type Request struct {
	Job       bool
	Resources plan.Resources
	// GPUs is the number of GPUs the job asks for (0: none).
	GPUs int
}

// Resolve decides where an instance runs and what its job asks for, from
// its kind's needs (kindGPUs), its stage's resources: and the experiment's
// executor.slurm. A stage's GPUs win over the kind's; the experiment's
// gpus: applies to GPU stages only, so a CPU stage never holds a GPU.
func Resolve(kindGPUs int, stageRes plan.Resources, cfg plan.Slurm) Request {
	r := stageRes.Over(cfg.Defaults)
	gpus := 0
	switch {
	case stageRes.GPUs != nil:
		gpus = *stageRes.GPUs
	case kindGPUs > 0 && cfg.Defaults.GPUs != nil:
		gpus = *cfg.Defaults.GPUs
	case kindGPUs > 0:
		gpus = kindGPUs
	}
	job := gpus > 0 || cfg.Submit == plan.SubmitAll
	if stageRes.Job != nil {
		job = *stageRes.Job
	}
	if r.CPUs == nil {
		n := DefaultCPUJobCPUs
		if gpus > 0 {
			n = DefaultGPUJobCPUs
		}
		r.CPUs = &n
	}
	return Request{Job: job, Resources: r, GPUs: gpus}
}

// SbatchArgs are the options of one job (sbatch adds --parsable).
func (q Request) SbatchArgs(name, staging string) []string {
	r := q.Resources
	args := []string{
		"--job-name=" + name,
		// Slurm's own messages (a time limit, a cancellation) land in the
		// stage's log next to the stage's output.
		"--output=" + filepath.Join(staging, store.LogFile), "--open-mode=append",
		"--chdir=" + staging,
		// gsim resubmits preempted and node-failed jobs itself, a bounded
		// number of times, and says so; a silent requeue would not be.
		"--no-requeue",
	}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag+"="+v)
		}
	}
	add("--partition", r.Partition)
	add("--account", r.Account)
	add("--qos", r.QOS)
	add("--time", r.Time)
	add("--mem", r.Mem)
	if r.CPUs != nil {
		add("--cpus-per-task", strconv.Itoa(*r.CPUs))
	}
	if q.GPUs > 0 {
		g := "gpu:"
		if r.GPUType != "" {
			g += r.GPUType + ":"
		}
		add("--gres", g+strconv.Itoa(q.GPUs))
	}
	add("--constraint", r.Constraint)
	return append(args, r.Sbatch...)
}

// Describe is a short account of the request for progress lines.
func (q Request) Describe() string {
	r := q.Resources
	var parts []string
	if r.Partition != "" {
		parts = append(parts, "partition "+r.Partition)
	}
	if q.GPUs > 0 {
		g := fmt.Sprintf("%d GPU", q.GPUs)
		if r.GPUType != "" {
			g = fmt.Sprintf("%d %s GPU", q.GPUs, r.GPUType)
		}
		if q.GPUs > 1 {
			g += "s"
		}
		parts = append(parts, g)
	}
	if r.CPUs != nil {
		parts = append(parts, fmt.Sprintf("%d CPU", *r.CPUs))
	}
	if r.Mem != "" {
		parts = append(parts, r.Mem)
	}
	if r.Time != "" {
		parts = append(parts, "time "+r.Time)
	}
	return strings.Join(parts, ", ")
}

// jobName is unique per submission, so that a gsim killed between sbatch
// and recording the id finds the job by name.
func jobName(spec *stage.Spec, nonce string) string {
	k := spec.Key
	if len(k) > 10 {
		k = k[:10]
	}
	return "gsim-" + spec.Stage + "-" + k + "-" + nonce
}

// jobScript is the batch script: it runs `gsim stage exec` in the attempt's
// folder and records the exit code.
func jobScript(gsim string, spec *stage.Spec) string {
	dir := spec.OutDir
	q := shellQuote
	return fmt.Sprintf(`#!/bin/sh
# gsim stage %s (key %s)
dir=%s
gsim=%s
if ! cd "$dir" 2>/dev/null || [ ! -f %s ]; then
  echo "gsim: $dir/%s is not visible on $(hostname): the store must be on a filesystem the compute nodes share, at the same path (or the attempt was abandoned)" >&2
  exit 98
fi
if [ ! -x "$gsim" ]; then
  echo "gsim: $gsim is not an executable on $(hostname): set executor.slurm.gsim (or --slurm gsim=PATH) to the gsim binary as the compute nodes see it" >&2
  exit 97
fi
# A resubmitted job starts clean, not on what an interrupted one left.
find . -mindepth 1 -maxdepth 1 ! -name %s ! -name %s -exec rm -rf {} +
echo "gsim: Slurm job ${SLURM_JOB_ID:-?} started on $(hostname) at $(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)"
"$gsim" stage exec "$dir/%s"
rc=$?
echo "$rc" > %s.tmp && mv %s.tmp %s
exit "$rc"
`, spec.Instance, spec.Key, q(dir), q(gsim), store.SpecFile, store.SpecFile, store.SpecFile, store.LogFile, store.SpecFile, ExitFile, ExitFile, ExitFile)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
