package plan

import "time"

// Resources is what one stage asks a batch system (Slurm) for. The
// experiment-wide defaults (executor.slurm) and each stage's resources: use
// it; an unset field (empty, nil) leaves the choice to the level below: the
// experiment's defaults, then the kind's (one GPU for a GPU kind), then the
// cluster's. Nothing here is part of a stage's key: where a stage runs does
// not change what it computes.
type Resources struct {
	// Job submits the stage as a batch job (true) or runs it where gsim
	// runs (false); nil follows Slurm.Submit.
	Job *bool
	// Partition, Account, QOS and Constraint are passed to sbatch as written.
	Partition, Account, QOS, Constraint string
	// Time is the job's time limit in Slurm's form ([D-]HH:MM:SS).
	Time string
	// Mem is the job's memory in Slurm's form (an integer with an optional
	// K, M, G or T suffix).
	Mem string
	// CPUs per task; GPUs of the job (0 asks for none even for a GPU kind);
	// GPUType narrows the GPU request (--gres=gpu:TYPE:N).
	CPUs, GPUs *int
	GPUType    string
	// Sbatch are extra sbatch arguments, after gsim's own.
	Sbatch []string
}

// Over returns r with every field r leaves unset taken from base.
func (r Resources) Over(base Resources) Resources {
	out := r
	if out.Job == nil {
		out.Job = base.Job
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&out.Partition, base.Partition}, {&out.Account, base.Account}, {&out.QOS, base.QOS},
		{&out.Constraint, base.Constraint}, {&out.Time, base.Time}, {&out.Mem, base.Mem},
		{&out.GPUType, base.GPUType},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	if out.CPUs == nil {
		out.CPUs = base.CPUs
	}
	if out.GPUs == nil {
		out.GPUs = base.GPUs
	}
	// Extra arguments accumulate: the experiment's first, so a stage's
	// come later on sbatch's command line and win where sbatch lets the
	// last occurrence of an option win.
	if len(base.Sbatch) > 0 {
		out.Sbatch = append(append([]string(nil), base.Sbatch...), r.Sbatch...)
	}
	return out
}

// Submit values: which stages become batch jobs when resources: does not say.
const (
	SubmitGPU = "gpu" // stages that use a GPU (the default)
	SubmitAll = "all" // every stage
)

// Slurm is the experiment's executor.slurm block.
type Slurm struct {
	// Defaults are the resources every job asks for unless its stage says
	// otherwise.
	Defaults Resources
	// Submit is SubmitGPU or SubmitAll; empty means SubmitGPU.
	Submit string
	// Retries bounds the resubmissions of a job that ended PREEMPTED,
	// NODE_FAIL or BOOT_FAIL; nil means the executor's default.
	Retries *int
	// Poll is the interval between two queries of the queue; 0 means the
	// executor's default.
	Poll time.Duration
	// Gsim is the gsim binary as the compute nodes see it; empty means the
	// running one.
	Gsim string
}
