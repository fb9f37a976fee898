// Package shell is the `shell` stage kind: a command run in the stage's output
// folder. It makes any tool a stage without writing Go, and it is how gsim's
// own engine is tested end to end.
package shell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gsim-dev/gsim/internal/lazyre"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Kind runs `run` with bash -euo pipefail -c, or `argv` directly.
type Kind struct{ stage.Base }

// Params are the kind's `with:` keys.
type Params struct {
	Run     string         `json:"run"`
	Argv    []string       `json:"argv"`
	Outputs []string       `json:"outputs"`
	Env     map[string]any `json:"env"`
	// Resources the command holds while it runs, e.g. {gpu: 1}, so a shell
	// stage that drives a GPU never overlaps another GPU stage.
	Resources map[string]int `json:"resources"`
}

func (Kind) Name() string    { return "shell" }
func (Kind) Version() string { return "1" }

func decode(params map[string]any) (Params, error) {
	var p Params
	err := stage.DecodeParams(params, &p)
	return p, err
}

func (Kind) CheckParams(params map[string]any) error {
	p, err := decode(params)
	if err != nil {
		return err
	}
	var errs []error
	switch {
	case p.Run == "" && len(p.Argv) == 0:
		errs = append(errs, &stage.ParamError{Path: "run", Msg: "missing: give `run` (a bash script) or `argv` (a command list)"})
	case p.Run != "" && len(p.Argv) > 0:
		errs = append(errs, &stage.ParamError{Path: "argv", Msg: "give `run` or `argv`, not both"})
	}
	for i, o := range p.Outputs {
		if o == "" || path.IsAbs(o) || strings.HasPrefix(path.Clean(o), "..") {
			errs = append(errs, &stage.ParamError{Path: fmt.Sprintf("outputs.%d", i),
				Msg: fmt.Sprintf("%q must be a relative path inside the output folder", o)})
		}
	}
	errs = append(errs, checkEnv(p.Env)...)
	for name, n := range p.Resources {
		if n < 0 {
			errs = append(errs, &stage.ParamError{Path: "resources." + name, Msg: "must be >= 0"})
		}
	}
	return errors.Join(errs...)
}

// envNameRE is a POSIX environment variable name.
var envNameRE = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnv refuses env entries the command could not receive as written,
// and any that would replace the GSIM_ variables telling it where its
// inputs and output folder are.
func checkEnv(env map[string]any) []error {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var errs []error
	for _, k := range names {
		at := "env." + k
		switch v := env[k]; {
		case !envNameRE.MatchString(k):
			errs = append(errs, &stage.ParamError{Path: at, Msg: fmt.Sprintf("%q is not a variable name: use letters, digits and '_', not starting with a digit", k)})
		case strings.HasPrefix(k, "GSIM_"):
			errs = append(errs, &stage.ParamError{Path: at, Msg: "names starting with GSIM_ are gsim's own (GSIM_OUT, GSIM_INPUT_*, ...): choose another name"})
		case v == nil:
		default:
			switch x := v.(type) {
			case string:
				if strings.IndexByte(x, 0) >= 0 {
					errs = append(errs, &stage.ParamError{Path: at, Msg: "holds a NUL byte, which no environment variable can carry"})
				}
			case bool, float64, int, int64, uint64:
			default:
				errs = append(errs, &stage.ParamError{Path: at, Msg: fmt.Sprintf("expected a string, number or boolean, got %T", x)})
			}
		}
	}
	return errs
}

func (Kind) Resources(params map[string]any) map[string]int {
	p, _ := decode(params)
	return p.Resources
}

func (Kind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decode(spec.Params)
	if err != nil {
		return err
	}
	specPath := filepath.Join(spec.OutDir, stage.SpecFile)
	if _, err := os.Stat(specPath); err != nil {
		if err := stage.WriteSpec(specPath, spec); err != nil {
			return err
		}
	}
	argv := p.Argv
	if p.Run != "" {
		argv = []string{"bash", "-euo", "pipefail", "-c", p.Run}
	}
	return stage.RunCommand(ctx, stage.Command{Argv: argv, Dir: spec.OutDir, Env: Environ(spec, specPath, p.Env)}, env)
}

// Environ is what a shell stage sees besides the inherited environment.
func Environ(spec *stage.Spec, specPath string, extra map[string]any) []string {
	env := []string{
		"GSIM_OUT=" + spec.OutDir,
		"GSIM_SPEC=" + specPath,
		"GSIM_INSTANCE=" + spec.Instance,
		"GSIM_BASE_DIR=" + spec.BaseDir,
	}
	needs := make([]string, 0, len(spec.Inputs))
	for n := range spec.Inputs {
		needs = append(needs, n)
	}
	sort.Strings(needs)
	for _, n := range needs {
		ins := spec.Inputs[n]
		dirs := make([]string, len(ins))
		for i, in := range ins {
			dirs[i] = in.Dir
		}
		if len(dirs) > 0 {
			env = append(env, "GSIM_INPUT_"+envName(n)+"="+dirs[0])
		}
		env = append(env, "GSIM_INPUTS_"+envName(n)+"="+strings.Join(dirs, "\n"))
	}
	vars := make([]string, 0, len(spec.Matrix))
	for v := range spec.Matrix {
		vars = append(vars, v)
	}
	sort.Strings(vars)
	for _, v := range vars {
		env = append(env, "GSIM_MATRIX_"+envName(v)+"="+format(spec.Matrix[v]))
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+format(extra[k]))
	}
	return env
}

func envName(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func format(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func (Kind) Validate(spec *stage.Spec) error {
	p, err := decode(spec.Params)
	if err != nil {
		return err
	}
	var missing []string
	for _, o := range p.Outputs {
		if _, err := os.Stat(filepath.Join(spec.OutDir, filepath.FromSlash(o))); err != nil {
			missing = append(missing, o)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("declared outputs not created: %s (the command must write them into $GSIM_OUT)", strings.Join(missing, ", "))
	}
	return nil
}
