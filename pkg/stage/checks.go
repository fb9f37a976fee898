package stage

import "context"

// PathChecker is implemented by kinds whose params name files or folders
// (a recorded run, a trace), so that a path that does not exist, or is the
// wrong type, is reported by gsim validate and dry runs at its YAML line
// rather than when the stage runs. baseDir is the experiment file's folder.
// It must only look (stat, list), never hash or read whole files. Errors
// are *ParamError where they concern one param.
type PathChecker interface {
	CheckPaths(params map[string]any, baseDir string) error
}

// Preflighter is implemented by kinds whose instances need something of the
// machine that runs them (CUDA torch, transformers, a Vidur checkout). Before
// any stage starts, the executor asks, once per kind and distinct key, for
// every instance that is going to run, and reports all that is missing at
// once instead of starting stages that fail one by one.
type Preflighter interface {
	// PreflightKey names what an instance with params needs: instances
	// whose keys are equal share one Preflight call. "" means the instance
	// needs nothing checked (a recorded profile, the embedded engine).
	PreflightKey(params map[string]any, baseDir string) string
	// Preflight returns what is missing for an instance with params (each
	// problem saying what to do, joined with errors.Join), or nil. It must
	// be quick: at most one subprocess, with a timeout.
	Preflight(ctx context.Context, params map[string]any, baseDir string) error
}

// Exit codes the GPU runners (stages/real_bench, stages/profile) share, so a
// kind can tell why one refused.
const (
	ExitHardwareMismatch = 3 // the GPU is not the declared hardware
	ExitNoCUDA           = 4 // no CUDA torch, or no GPU visible to it
)
