package vidur

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/gsim-dev/gsim/pkg/pyprobe"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// shimEnv is what the shim runs with; the probe imports Vidur the same way.
var shimEnv = []string{"WANDB_MODE=disabled", "MPLBACKEND=Agg"}

// PreflightKey names what a Vidur run with params needs: its interpreter,
// checkout and stand-in modules. Runs with the same key share one check.
func PreflightKey(params map[string]any, baseDir string) string {
	p, err := decodeParams(params)
	if err != nil {
		return ""
	}
	loc, _ := p.locate(baseDir)
	return fmt.Sprintf("vidur:%s\x00%s\x00%s", loc.Python, loc.VidurPath, loc.Stubs)
}

// Preflight says everything a Vidur run with params lacks on this machine,
// without running Vidur: a checkout (vidur/main.py), the shim (stages/vidur),
// and an interpreter that imports vidur.main with the path the shim gives
// it (the user's stand-ins first, then the checkout, gsim's stand-ins in
// stages/vidur/standins last). The interpreter is asked once (one
// subprocess, with a timeout; pyprobe caches the answer).
func Preflight(ctx context.Context, params map[string]any, baseDir string) error {
	p, err := decodeParams(params)
	if err != nil {
		return err
	}
	var errs []error
	shim, err := stage.RunnerDir("vidur", baseDir)
	if err != nil {
		errs = append(errs, err)
	}
	loc, err := p.locate(baseDir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var path, after []string
	if loc.Stubs != "" {
		path = append(path, loc.Stubs)
	}
	path = append(path, loc.VidurPath)
	if shim != "" {
		after = append(after, filepath.Join(shim, "standins"))
	}
	res, err := pyprobe.Probe(ctx, pyprobe.Request{Python: loc.Python, Path: path, After: after, Modules: []string{"vidur.main"}, Env: shimEnv})
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("%w; set with.python or $GSIM_VIDUR_PYTHON to the interpreter that has Vidur's dependencies", err))
	case !res.Modules["vidur.main"].OK:
		errs = append(errs, fmt.Errorf("%s cannot import Vidur from %s (%s): install Vidur's Python dependencies for it "+
			"(docs/vidur.md), or use gsim's embedded simulator (uses: sim)", res.Describe(loc.Python), loc.VidurPath, res.Modules["vidur.main"].Error))
	}
	return errors.Join(errs...)
}

// PreflightKey implements stage.Preflighter with the function above.
func (Kind) PreflightKey(params map[string]any, baseDir string) string {
	return PreflightKey(params, baseDir)
}

// Preflight implements stage.Preflighter with the function above.
func (Kind) Preflight(ctx context.Context, params map[string]any, baseDir string) error {
	return Preflight(ctx, params, baseDir)
}

var _ stage.Preflighter = Kind{}
