package profile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// Sources of a profile stage.
const (
	SourceGPU      = "gpu"
	SourceRecorded = "recorded"
)

// Params are the `with:` of a profile stage. Grid knobs go to the runner
// (stages/profile) unchanged; zero values take the runner's defaults.
type Params struct {
	Source string `json:"source,omitempty"`
	// Path is a recorded profile folder (source: recorded), relative to the
	// experiment file.
	Path string `json:"path,omitempty"`
	// Hardware is the Vidur device name the profile must be for (a100, a40,
	// h100, h200); empty accepts any.
	Hardware string `json:"hardware,omitempty"`
	// Python runs the runner (default python3).
	Python string `json:"python,omitempty"`

	Model            string `json:"model,omitempty"`
	ModelDir         string `json:"model_dir,omitempty"`
	MaxTokens        int    `json:"max_tokens,omitempty"`
	MaxSeqLen        int    `json:"max_seq_len,omitempty"`
	MaxBatchSize     int    `json:"max_batch_size,omitempty"`
	MaxKVTokens      int    `json:"max_kv_tokens,omitempty"`
	BlockSize        int    `json:"block_size,omitempty"`
	MLPRepeats       int    `json:"mlp_repeats,omitempty"`
	AttentionRepeats int    `json:"attention_repeats,omitempty"`
	Warmup           *int   `json:"warmup,omitempty"`
	CPUOverhead      *bool  `json:"cpu_overhead,omitempty"`
	CPUBatchSizes    []int  `json:"cpu_batch_sizes,omitempty"`
	Quick            bool   `json:"quick,omitempty"`
	Seed             int    `json:"seed,omitempty"`
}

// Kind is the `profile` stage kind.
type Kind struct{}

var _ stage.Kind = Kind{}

func (Kind) Name() string { return "profile" }

// Version changes when the recorded-copy logic or validation changes; the
// runner's identity is in Fingerprint.
func (Kind) Version() string { return "1" }

func decode(params map[string]any) (Params, error) {
	var p Params
	if err := stage.DecodeParams(params, &p); err != nil {
		return p, err
	}
	if p.Source == "" {
		p.Source = SourceGPU
	}
	return p, nil
}

func (Kind) CheckParams(params map[string]any) error {
	p, err := decode(params)
	if err != nil {
		return err
	}
	var errs []error
	switch p.Source {
	case SourceGPU:
		if p.Path != "" {
			errs = append(errs, &stage.ParamError{Path: "path", Msg: "only for source: recorded; remove it or set source: recorded"})
		}
	case SourceRecorded:
		if p.Path == "" {
			errs = append(errs, &stage.ParamError{Path: "path", Msg: "source: recorded needs path: a profile folder (e.g. testdata/profile/h100)"})
		}
	default:
		errs = append(errs, &stage.ParamError{Path: "source", Msg: fmt.Sprintf("%q is not a source; use gpu or recorded", p.Source)})
	}
	switch p.Hardware {
	case "", "a100", "a40", "h100", "h200":
	default:
		errs = append(errs, &stage.ParamError{Path: "hardware", Msg: fmt.Sprintf("%q is not a Vidur device name; use a100, a40, h100 or h200", p.Hardware)})
	}
	for name, v := range map[string]int{
		"max_tokens": p.MaxTokens, "max_seq_len": p.MaxSeqLen, "max_batch_size": p.MaxBatchSize,
		"max_kv_tokens": p.MaxKVTokens, "block_size": p.BlockSize, "mlp_repeats": p.MLPRepeats,
		"attention_repeats": p.AttentionRepeats,
	} {
		if v < 0 {
			errs = append(errs, &stage.ParamError{Path: name, Msg: "must be positive (or left out for the default)"})
		}
	}
	if p.Warmup != nil && *p.Warmup < 0 {
		errs = append(errs, &stage.ParamError{Path: "warmup", Msg: "must be >= 0"})
	}
	for i, b := range p.CPUBatchSizes {
		if b < 1 {
			errs = append(errs, &stage.ParamError{Path: fmt.Sprintf("cpu_batch_sizes[%d]", i), Msg: "must be >= 1"})
		}
	}
	return errors.Join(errs...)
}

func (Kind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := decode(params)
	if err != nil {
		return nil, err
	}
	if p.Source == SourceRecorded {
		dir := stage.Resolve(baseDir, p.Path)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			what := "does not exist"
			if err == nil {
				what = "is a file"
			} else if !errors.Is(err, os.ErrNotExist) {
				what = err.Error()
			}
			where := p.Path
			if dir != p.Path {
				where += " (" + dir + ")"
			}
			return nil, &stage.ParamError{Path: "path", Msg: fmt.Sprintf("recorded profile folder %s %s; set it to a folder written by the profile stage, e.g. testdata/profile/h100 (relative paths start at the experiment file's folder)", where, what)}
		}
		d, err := stage.DirDigest(dir)
		if err != nil {
			return nil, fmt.Errorf("recorded profile %s: %w", dir, err)
		}
		return map[string]string{"recorded:" + p.Path: d}, nil
	}
	_, fp, err := stage.RunnerFingerprint("profile", baseDir)
	if err != nil {
		return nil, err
	}
	card, err := modelCard(p, baseDir)
	if err != nil {
		return nil, err
	}
	cd, err := stage.FileDigest(card)
	if err != nil {
		return nil, fmt.Errorf("model card: %w", err)
	}
	fp["model:"+filepath.Base(filepath.Dir(card))] = cd
	return fp, nil
}

// modelCard finds the config.json the runner builds the model from.
func modelCard(p Params, baseDir string) (string, error) {
	if p.ModelDir != "" && filepath.IsAbs(p.ModelDir) {
		return filepath.Join(p.ModelDir, "config.json"), nil
	}
	models, err := stage.RunnerDir("models", baseDir)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(models, "Qwen3-0.6B")
	if p.ModelDir != "" {
		// The runner resolves model_dir against the repository root, whose
		// stages/models folder RunnerDir found.
		dir = filepath.Join(filepath.Dir(filepath.Dir(models)), p.ModelDir)
	}
	return filepath.Join(dir, "config.json"), nil
}

func (Kind) Resources(params map[string]any) map[string]int {
	p, err := decode(params)
	if err == nil && p.Source == SourceRecorded {
		return nil
	}
	return map[string]int{"gpu": 1}
}

func (Kind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decode(spec.Params)
	if err != nil {
		return err
	}
	if p.Source == SourceRecorded {
		return copyRecorded(stage.Resolve(spec.BaseDir, p.Path), spec.OutDir, p.Hardware, env)
	}
	runner, err := stage.RunnerDir("profile", spec.BaseDir)
	if err != nil {
		return err
	}
	specPath := filepath.Join(spec.OutDir, stage.SpecFile)
	if _, err := os.Stat(specPath); err != nil {
		if err := stage.WriteSpec(specPath, spec); err != nil {
			return err
		}
	}
	py := interpreter(p)
	return explain(stage.RunCommand(ctx, stage.Command{
		Argv: []string{py, filepath.Join(runner, "run.py"), "--spec", specPath},
		Dir:  spec.OutDir,
		Env:  []string{"PYTHONUNBUFFERED=1"},
	}, env), py)
}

func (Kind) Validate(spec *stage.Spec) error {
	if err := Validate(spec.OutDir); err != nil {
		return fmt.Errorf("profile output: %w", err)
	}
	p, err := decode(spec.Params)
	if err != nil {
		return err
	}
	return checkHardware(spec.OutDir, p.Hardware)
}

func checkHardware(root, want string) error {
	if want == "" {
		return nil
	}
	_, device, _, err := ModelDir(root)
	if err != nil {
		return err
	}
	if device != want {
		return fmt.Errorf("%s holds a %s profile but with.hardware is %s; profile on that GPU or change hardware",
			root, device, want)
	}
	return nil
}

// copyRecorded validates a recorded profile and copies its files into out.
func copyRecorded(src, out, hardware string, env stage.Env) error {
	if err := Validate(src); err != nil {
		return fmt.Errorf("recorded profile: %w", err)
	}
	if err := checkHardware(src, hardware); err != nil {
		return err
	}
	n := 0
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(out, rel), 0o755)
		}
		if !d.Type().IsRegular() || rel == stage.SpecFile {
			return nil
		}
		n++
		return copyFile(path, filepath.Join(out, rel))
	})
	if err != nil {
		return fmt.Errorf("copy recorded profile %s: %w", src, err)
	}
	if env.Log != nil {
		fmt.Fprintf(env.Log, "profile: copied %d files of the recorded profile %s\n", n, src)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}
