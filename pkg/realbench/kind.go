// Package realbench holds the `real-bench` kind, which times a workload on a
// real GPU through the out-of-process runner stages/real_bench (transformers'
// continuous batching), and the `replay` kind, which adopts a recorded run
// folder for a workload whose digest it matches.
package realbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Exit codes of stages/real_bench/run.py (stages/profile/run.py shares them).
const (
	ExitHardwareMismatch = stage.ExitHardwareMismatch
	ExitNoCUDA           = stage.ExitNoCUDA
)

// RunnerName is the folder under stages/ that holds the runner.
const RunnerName = "real_bench"

// Params mirrors stages/real_bench/bench_core.py DEFAULT_PARAMS so that a typo
// fails at `gsim validate`, not minutes later on the GPU. The runner applies
// the defaults; pointers tell "unset" from zero.
type Params struct {
	Model                 string   `json:"model,omitempty"`
	ModelConfig           string   `json:"model_config,omitempty"`
	Weights               string   `json:"weights,omitempty"`
	Dtype                 string   `json:"dtype,omitempty"`
	AttnImplementation    string   `json:"attn_implementation,omitempty"`
	Scheduler             string   `json:"scheduler,omitempty"`
	MaxBatchTokens        *int     `json:"max_batch_tokens,omitempty"`
	BlockSize             *int     `json:"block_size,omitempty"`
	NumBlocks             *int     `json:"num_blocks,omitempty"`
	MemoryShare           *float64 `json:"memory_share,omitempty"`
	MaxRequestsPerBatch   *int     `json:"max_requests_per_batch,omitempty"`
	SafetyMargin          *float64 `json:"safety_margin,omitempty"`
	AllowBlockSharing     *bool    `json:"allow_block_sharing,omitempty"`
	CUDAGraphs            *bool    `json:"cuda_graphs,omitempty"`
	Compile               *bool    `json:"compile,omitempty"`
	AsyncBatching         *bool    `json:"async_batching,omitempty"`
	Timestamps            *bool    `json:"timestamps,omitempty"`
	WarmupRequests        *int     `json:"warmup_requests,omitempty"`
	Hardware              string   `json:"hardware,omitempty"`
	AllowHardwareMismatch bool     `json:"allow_hardware_mismatch,omitempty"`
	Seed                  *int     `json:"seed,omitempty"`
	SwitchIntervalS       *float64 `json:"switch_interval_s,omitempty"`
	TimeoutS              *float64 `json:"timeout_s,omitempty"`
	// Python is the interpreter that runs the runner; $GSIM_PYTHON, then
	// python3, when empty.
	Python string `json:"python,omitempty"`
	// Workload names the workload stage to run when several needs hold a
	// workload (stage.Role); the runner never sees it.
	Workload string `json:"workload,omitempty"`
}

// WorkloadRole is the one input of real-bench and replay (stage.WorkloadRole).
var WorkloadRole = stage.WorkloadRole

// Kind is the `real-bench` stage kind.
type Kind struct{}

var _ stage.Kind = Kind{}

// Name implements stage.Kind.
func (Kind) Name() string { return "real-bench" }

// Version covers the Go side (spec writing, validation); the runner's code is
// in Fingerprint.
func (Kind) Version() string { return "1" }

func decode(params map[string]any) (Params, error) {
	var p Params
	err := stage.DecodeParams(params, &p)
	return p, err
}

// CheckParams implements stage.Kind.
func (Kind) CheckParams(params map[string]any) error {
	p, err := decode(params)
	if err != nil {
		return err
	}
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &stage.ParamError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	switch p.Scheduler {
	case "", "fifo", "prefill_first":
	default:
		bad("scheduler", "%q is not a transformers scheduler; use fifo or prefill_first", p.Scheduler)
	}
	switch strings.ToLower(p.Hardware) {
	case "", "a100", "h100", "h200":
	default:
		bad("hardware", "%q; use a100, h100 or h200 (the GPU the run must be on)", p.Hardware)
	}
	switch p.Dtype {
	case "", "bfloat16", "float16", "float32":
	default:
		bad("dtype", "%q; use bfloat16, float16 or float32", p.Dtype)
	}
	for name, v := range map[string]*int{"max_batch_tokens": p.MaxBatchTokens, "block_size": p.BlockSize,
		"num_blocks": p.NumBlocks, "max_requests_per_batch": p.MaxRequestsPerBatch} {
		if v != nil && *v < 1 {
			bad(name, "must be >= 1")
		}
	}
	for name, v := range map[string]*int{"warmup_requests": p.WarmupRequests, "seed": p.Seed} {
		if v != nil && *v < 0 {
			bad(name, "must be >= 0")
		}
	}
	for name, v := range map[string]*float64{"memory_share": p.MemoryShare, "safety_margin": p.SafetyMargin} {
		if v != nil && (*v < 0 || *v > 1) {
			bad(name, "must be in [0, 1]")
		}
	}
	for name, v := range map[string]*float64{"timeout_s": p.TimeoutS, "switch_interval_s": p.SwitchIntervalS} {
		if v != nil && *v < 0 {
			bad(name, "must be >= 0")
		}
	}
	return errors.Join(errs...)
}

// Fingerprint is the runner's code and the model card it builds from.
func (Kind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := decode(params)
	if err != nil {
		return nil, err
	}
	runner, fp, err := stage.RunnerFingerprint(RunnerName, baseDir)
	if err != nil {
		return nil, err
	}
	card := modelCard(p, runner, baseDir)
	cd, err := stage.FileDigest(card)
	if err != nil {
		return nil, fmt.Errorf("model card %s: %w (set with.model_config to a folder holding config.json)", card, err)
	}
	fp["model:"+filepath.Base(filepath.Dir(card))] = cd
	return fp, nil
}

// modelCard is the config.json the runner reads: with.model_config, else
// stages/models/<basename of with.model>.
func modelCard(p Params, runner, baseDir string) string {
	if p.ModelConfig != "" {
		return filepath.Join(stage.Resolve(baseDir, p.ModelConfig), "config.json")
	}
	model := p.Model
	if model == "" {
		model = "Qwen/Qwen3-0.6B"
	}
	return filepath.Join(filepath.Dir(runner), "models", filepath.Base(model), "config.json")
}

// Resources implements stage.Kind: one GPU.
func (Kind) Resources(map[string]any) map[string]int { return map[string]int{"gpu": 1} }

// Command is the runner invocation for a spec file; exported for tests and
// for executors that want to show it.
func Command(p Params, runner, specPath string) stage.Command {
	return stage.Command{
		Argv: []string{interpreter(p), filepath.Join(runner, "run.py"), "--spec", specPath},
		Dir:  runner,
		Env:  []string{"PYTHONUNBUFFERED=1"},
	}
}

// Produces implements stage.Producer: a run folder.
func (Kind) Produces() string { return stage.HoldsRun }

// InputRoles implements stage.InputReader.
func (Kind) InputRoles(map[string]any) []stage.Role { return []stage.Role{WorkloadRole} }

// Run writes the spec outside OutDir (so the output folder holds only the
// run) and runs the runner.
func (Kind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decode(spec.Params)
	if err != nil {
		return err
	}
	win, err := workloadInput(spec)
	if err != nil {
		return err
	}
	runner, err := stage.RunnerDir(RunnerName, spec.BaseDir)
	if err != nil {
		return err
	}
	{
		// The runner reads its workload as the input named "workload" and
		// knows only its own params.
		cp := *spec
		cp.Inputs = map[string][]stage.Input{"workload": {win}}
		cp.Params = make(map[string]any, len(spec.Params))
		for k, v := range spec.Params {
			if k != "workload" {
				cp.Params[k] = v
			}
		}
		spec = &cp
	}
	if p.ModelConfig != "" {
		// The runner sees the spec's params as written; give it an absolute
		// path so it does not depend on its working directory.
		params := make(map[string]any, len(spec.Params))
		for k, v := range spec.Params {
			params[k] = v
		}
		params["model_config"] = stage.Resolve(spec.BaseDir, p.ModelConfig)
		cp := *spec
		cp.Params = params
		spec = &cp
	}
	tmp, err := os.MkdirTemp("", "gsim-real-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	specPath := filepath.Join(tmp, stage.SpecFile)
	if err := stage.WriteSpec(specPath, spec); err != nil {
		return err
	}
	return explain(stage.RunCommand(ctx, Command(p, runner, specPath), env), p)
}

// explain turns the runner's refusal exit codes into errors that say what to
// do; the runner's own message is in the log tail.
func explain(err error, p Params) error {
	var ee *stage.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	switch ee.ExitCode {
	case ExitHardwareMismatch:
		hw := p.Hardware
		if hw == "" {
			hw = "h100"
		}
		return fmt.Errorf("real-bench refused: the GPU does not match with.hardware (%s); run it on that GPU, "+
			"change hardware, or set allow_hardware_mismatch: true: %w", hw, err)
	case ExitNoCUDA:
		return fmt.Errorf("real-bench needs a CUDA GPU and none is visible to %s; run this stage where one is "+
			"(set with.python or $GSIM_PYTHON to an interpreter with CUDA torch) or use the replay kind with a "+
			"recorded run folder: %w", ee.Command[0], err)
	}
	return err
}

// Validate checks the run folder against the canonical schema and that it
// was made from this stage's workload.
func (Kind) Validate(spec *stage.Spec) error {
	if err := schema.ValidateRun(spec.OutDir); err != nil {
		return fmt.Errorf("real-bench output: %w", err)
	}
	wdir, err := workloadDir(spec)
	if err != nil {
		return err
	}
	return checkDigest(spec.OutDir, wdir)
}

func workloadInput(spec *stage.Spec) (stage.Input, error) {
	in, _, err := stage.FindInput(spec, WorkloadRole)
	if err != nil {
		return in, fmt.Errorf("%s %s: %w", spec.Kind, spec.Instance, err)
	}
	return in, nil
}

func workloadDir(spec *stage.Spec) (string, error) {
	in, err := workloadInput(spec)
	return in.Dir, err
}

// checkDigest compares run_meta.json's workload_digest with the workload's.
func checkDigest(runDir, workloadDir string) error {
	meta, err := schema.ReadRunMeta(filepath.Join(runDir, schema.RunMetaFile))
	if err != nil {
		return err
	}
	want, err := schema.WorkloadDigest(workloadDir)
	if err != nil {
		return err
	}
	if meta.WorkloadDigest != want {
		return &DigestError{RunDir: runDir, RunDigest: meta.WorkloadDigest, WorkloadDir: workloadDir, WorkloadDigest: want}
	}
	return nil
}

// DigestError is a run recorded on another workload than the one it is
// used with.
type DigestError struct {
	RunDir, RunDigest, WorkloadDir, WorkloadDigest string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("%s was recorded on workload %s but this stage's workload (%s) is %s: the runs are not "+
		"comparable. Use the workload params the run was recorded with (its workload folder's workload_meta.json "+
		"lists them), or record the run again on this workload",
		filepath.Join(e.RunDir, schema.RunMetaFile), schema.ShortDigest(e.RunDigest), e.WorkloadDir,
		schema.ShortDigest(e.WorkloadDigest))
}
