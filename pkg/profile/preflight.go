package profile

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/gsim-dev/gsim/pkg/pyprobe"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// interpreter runs the runner: with.python, else $GSIM_PYTHON (as for
// real-bench: one variable picks the CUDA interpreter), else python3.
func interpreter(p Params) string {
	switch {
	case p.Python != "":
		return p.Python
	case os.Getenv("GSIM_PYTHON") != "":
		return os.Getenv("GSIM_PYTHON")
	}
	return "python3"
}

// explain turns the runner's refusals into errors that say what to do; the
// runner's own message is in the log tail.
func explain(err error, python string) error {
	var ee *stage.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	switch ee.ExitCode {
	case stage.ExitNoCUDA:
		return fmt.Errorf("profile needs a CUDA GPU and none is visible to %s; run this stage where one is "+
			"(set with.python or $GSIM_PYTHON to an interpreter with CUDA torch) or use source: recorded with a "+
			"recorded profile folder: %w", python, err)
	case stage.ExitHardwareMismatch:
		return fmt.Errorf("profile refused: the GPU is not with.hardware (or has no Vidur device name); run it on "+
			"that GPU or change hardware: %w", err)
	}
	return err
}

// gpuModules are what stages/profile imports.
var gpuModules = []string{"torch", "transformers", "transformers.models.qwen3"}

// PreflightKey implements stage.Preflighter: a recorded profile needs
// nothing; a GPU profile needs its interpreter's CUDA torch.
func (Kind) PreflightKey(params map[string]any, _ string) string {
	p, err := decode(params)
	if err != nil || p.Source == SourceRecorded {
		return ""
	}
	return "python:" + interpreter(p)
}

// Preflight implements stage.Preflighter: the interpreter imports torch and
// transformers and torch sees a GPU, and the runner folder is there.
func (Kind) Preflight(ctx context.Context, params map[string]any, baseDir string) error {
	p, err := decode(params)
	if err != nil {
		return err
	}
	var errs []error
	if _, err := stage.RunnerDir("profile", baseDir); err != nil {
		errs = append(errs, err)
	}
	if err := pyprobe.CUDATorch(ctx, interpreter(p), gpuModules); err != nil {
		errs = append(errs, err, errors.New("the profile stage times this machine's GPU: run it where a GPU is "+
			"(with.python or $GSIM_PYTHON naming an interpreter with CUDA torch), or use source: recorded"))
	}
	return errors.Join(errs...)
}

var _ stage.Preflighter = Kind{}
