package realbench

import (
	"context"
	"errors"
	"os"

	"github.com/gsim-dev/gsim/pkg/pyprobe"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// interpreter runs the runner: with.python, else $GSIM_PYTHON, else python3.
func interpreter(p Params) string {
	switch {
	case p.Python != "":
		return p.Python
	case os.Getenv("GSIM_PYTHON") != "":
		return os.Getenv("GSIM_PYTHON")
	}
	return "python3"
}

// gpuModules are what stages/real_bench imports: transformers' continuous
// batching is the engine it times.
var gpuModules = []string{"torch", "transformers", "transformers.generation.continuous_batching"}

// PreflightKey implements stage.Preflighter: instances on one interpreter
// share one check.
func (Kind) PreflightKey(params map[string]any, _ string) string {
	p, err := decode(params)
	if err != nil {
		return ""
	}
	return "python:" + interpreter(p)
}

// Preflight implements stage.Preflighter: the interpreter imports torch and
// transformers' continuous batching, torch sees a GPU, and the runner
// folder is there.
func (Kind) Preflight(ctx context.Context, params map[string]any, baseDir string) error {
	p, err := decode(params)
	if err != nil {
		return err
	}
	var errs []error
	if _, err := stage.RunnerDir(RunnerName, baseDir); err != nil {
		errs = append(errs, err)
	}
	if err := pyprobe.CUDATorch(ctx, interpreter(p), gpuModules); err != nil {
		errs = append(errs, err, errors.New("real-bench times a real GPU: run it where one is (with.python or "+
			"$GSIM_PYTHON naming an interpreter with CUDA torch and transformers >= 5.17), or use the replay "+
			"kind with a recorded run folder"))
	}
	return errors.Join(errs...)
}

var _ stage.Preflighter = Kind{}
