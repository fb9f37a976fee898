// Package sim is gsim's embedded simulator as stage kinds: `sim` runs a
// workload through a scheduling policy and an iteration-time predictor
// (pkg/sim/engine, sched, predict) and writes the canonical run folder;
// `fit` fits the step-model predictor to real runs.
package sim

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// EngineEmbedded is the only engine a sim stage runs on; the param stays
// so experiments that spell it out keep working.
const EngineEmbedded = "embedded"

// VidurMigration says how an experiment written when Vidur was an engine
// of the sim kind is written now.
const VidurMigration = "real Vidur is its own kind now: write `uses: vidur` instead of `uses: sim` and drop `engine: vidur` (the other with: keys stay)"

// Predictor names.
const (
	PredictorVidurProfile = "vidur-profile"
	PredictorStepModel    = "step-model"
)

// Params are the `with:` of a sim stage. Knob names are shared with the
// vidur kind's so one experiment can run both.
type Params struct {
	Engine    string `json:"engine"`
	Scheduler string `json:"scheduler"`
	Predictor string `json:"predictor"`

	MaxBatchTokens int64    `json:"max_batch_tokens"`
	BatchSizeCap   int64    `json:"batch_size_cap"`
	ChunkSize      int64    `json:"chunk_size"`
	BlockSize      int64    `json:"block_size"`
	NumBlocks      int64    `json:"num_blocks"`
	Watermark      *float64 `json:"watermark"`
	SafetyMargin   *float64 `json:"safety_margin"`
	MaxKVRead      int64    `json:"max_kv_read"`
	MaxTokens      int64    `json:"max_tokens"`

	GPUMemoryGB         float64 `json:"gpu_memory_gb"`
	MemoryUtilization   float64 `json:"memory_utilization"`
	ActivationReserveGB float64 `json:"activation_reserve_gb"`

	Hardware    string `json:"hardware"`
	Model       string `json:"model"`
	ModelConfig string `json:"model_config"`
	Seed        *int64 `json:"seed"`

	// CPUOverhead adds Vidur's CPU overhead terms to vidur-profile (off by
	// default, as in Vidur).
	CPUOverhead bool `json:"cpu_overhead"`
	// Interpolation is vidur-profile's reading between profiled points:
	// linear (default), nearest, or forest (a random forest grown as
	// Vidur grows its own, to reproduce Vidur); or vidur-table, which
	// reads no profile but the prediction tables a real Vidur run used.
	Interpolation string `json:"interpolation"`
	// VidurTables names the folder of those tables (raw/predictions of
	// a vidur stage); empty: the raw/predictions of the vidur stage under
	// needs:.
	VidurTables string `json:"vidur_tables"`
	// Profile and StepModel name a profile folder or a step_model.json to
	// use instead of a `profile` or `fit` input.
	Profile   string `json:"profile"`
	StepModel string `json:"step_model"`
	// TokenMetrics false writes token_metrics.csv with its header only.
	TokenMetrics *bool `json:"token_metrics"`
	// Workload names the workload stage when several needs hold one.
	Workload string `json:"workload"`
}

// Defaults. hf-cb follows the real bench (stages/real_bench: block_size 256,
// max_batch_tokens 8192, transformers' safety margins); the Vidur policies follow
// Vidur's config defaults.
const (
	defaultHFBlockSize      = 256
	defaultVidurBlockSize   = 16
	defaultHFMaxTokens      = 8192
	defaultVidurMaxTokens   = 4096
	defaultBatchSizeCap     = 128
	defaultChunkSize        = 512
	defaultWatermark        = 0.01
	defaultSafetyMargin     = 0.15
	defaultRequestMaxTokens = 4096
	defaultGPUMemoryGB      = 80
	defaultMemUtilHF        = 0.8
	defaultMemUtilVidur     = 0.9
	defaultActivationGB     = 1
)

func isHF(s string) bool { return s == "hf-cb" || s == "hf-cb-fifo" || s == "hf-cb-prefill-first" }

// decodeParams decodes and checks params, filling defaults.
func decodeParams(raw map[string]any) (*Params, error) {
	var p Params
	if err := stage.DecodeParams(raw, &p); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &stage.ParamError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if p.Engine == "" {
		p.Engine = EngineEmbedded
	}
	switch p.Engine {
	case EngineEmbedded:
	case "vidur":
		bad("engine", "%s", VidurMigration)
	default:
		bad("engine", "%q; the sim kind is gsim's embedded simulator (engine: embedded, or leave engine out); real Vidur is `uses: vidur`", p.Engine)
	}
	if p.Scheduler == "" {
		p.Scheduler = "hf-cb"
	}
	if !slices.Contains(sched.Names, p.Scheduler) && p.Scheduler != "hf-cb-fifo" {
		bad("scheduler", "%q; use one of %v", p.Scheduler, sched.Names)
	}
	if p.Predictor != "" && p.Predictor != PredictorVidurProfile && p.Predictor != PredictorStepModel {
		bad("predictor", "%q; use %s or %s", p.Predictor, PredictorVidurProfile, PredictorStepModel)
	}
	hf := isHF(p.Scheduler)
	if p.BlockSize == 0 {
		p.BlockSize = map[bool]int64{true: defaultHFBlockSize, false: defaultVidurBlockSize}[hf]
	}
	if p.MaxBatchTokens == 0 {
		p.MaxBatchTokens = map[bool]int64{true: defaultHFMaxTokens, false: defaultVidurMaxTokens}[hf]
	}
	if p.BatchSizeCap == 0 && !hf {
		p.BatchSizeCap = defaultBatchSizeCap
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = defaultChunkSize
	}
	if p.MaxTokens == 0 {
		p.MaxTokens = defaultRequestMaxTokens
	}
	if p.Watermark == nil {
		w := defaultWatermark
		p.Watermark = &w
	}
	if p.SafetyMargin == nil {
		// transformers' defaults: 0.15 for FIFO, none for prefill-first.
		s := defaultSafetyMargin
		if p.Scheduler == "hf-cb-prefill-first" {
			s = 0
		}
		p.SafetyMargin = &s
	}
	if p.GPUMemoryGB == 0 {
		p.GPUMemoryGB = defaultGPUMemoryGB
	}
	if p.MemoryUtilization == 0 {
		p.MemoryUtilization = map[bool]float64{true: defaultMemUtilHF, false: defaultMemUtilVidur}[hf]
	}
	if p.ActivationReserveGB == 0 {
		p.ActivationReserveGB = defaultActivationGB
	}
	for _, c := range []struct {
		path string
		v    int64
	}{{"max_batch_tokens", p.MaxBatchTokens}, {"block_size", p.BlockSize}, {"chunk_size", p.ChunkSize},
		{"max_tokens", p.MaxTokens}} {
		if c.v <= 0 {
			bad(c.path, "%d; must be positive", c.v)
		}
	}
	if p.Scheduler == "orca" && p.MaxTokens > 0 && p.BlockSize > 0 && p.MaxTokens < p.BlockSize {
		// orca reserves max_tokens/block_size blocks per request up front.
		bad("max_tokens", "%d is less than block_size %d; orca reserves max_tokens/block_size KV blocks for every request, so give at least one block's worth", p.MaxTokens, p.BlockSize)
	}
	if p.BatchSizeCap < 0 {
		bad("batch_size_cap", "%d; must be positive (or 0 for none under hf-cb)", p.BatchSizeCap)
	}
	if p.MaxKVRead < 0 {
		bad("max_kv_read", "%d; must be positive, or 0 for no cache budget", p.MaxKVRead)
	}
	if p.NumBlocks < 0 {
		bad("num_blocks", "%d; must be positive, or leave it out to derive it from GPU memory", p.NumBlocks)
	}
	if *p.Watermark < 0 || *p.Watermark >= 1 {
		bad("watermark", "%v; a fraction of the blocks in [0, 1)", *p.Watermark)
	}
	if *p.SafetyMargin < 0 || *p.SafetyMargin >= 1 {
		bad("safety_margin", "%v; a fraction of the blocks in [0, 1)", *p.SafetyMargin)
	}
	if p.MemoryUtilization <= 0 || p.MemoryUtilization > 1 {
		bad("memory_utilization", "%v; a fraction in (0, 1]", p.MemoryUtilization)
	}
	if p.GPUMemoryGB < 0 || p.ActivationReserveGB < 0 {
		bad("gpu_memory_gb", "memory sizes must not be negative")
	}
	if p.Interpolation != "" && !slices.Contains([]string{predict.InterpLinear, predict.InterpNearest, predict.InterpForest, predict.InterpVidurTable}, p.Interpolation) {
		bad("interpolation", "%q; use %s, %s, %s or %s", p.Interpolation, predict.InterpLinear, predict.InterpNearest, predict.InterpForest, predict.InterpVidurTable)
	}
	if p.VidurTables != "" && p.Interpolation != predict.InterpVidurTable {
		bad("vidur_tables", "is read only with interpolation: %s", predict.InterpVidurTable)
	}
	if p.Profile != "" && p.StepModel != "" {
		bad("step_model", "give profile or step_model, not both (they belong to different predictors)")
	}
	return &p, errors.Join(errs...)
}

func (p *Params) schedConfig(numBlocks int64) sched.Config {
	kvRead := p.MaxKVRead
	if kvRead == 0 && isHF(p.Scheduler) {
		// transformers' cache budget is the cache's size in tokens.
		kvRead = numBlocks * p.BlockSize
	}
	return sched.Config{BlockSize: p.BlockSize, NumBlocks: numBlocks, MaxBatchTokens: p.MaxBatchTokens,
		BatchSizeCap: p.BatchSizeCap, ChunkSize: p.ChunkSize, Watermark: *p.Watermark,
		SafetyMargin: *p.SafetyMargin, MaxKVRead: kvRead, MaxTokens: p.MaxTokens}
}

func (p *Params) tokens() bool { return p.TokenMetrics == nil || *p.TokenMetrics }

// The inputs a sim stage reads, found by what the needs hold.
var (
	workloadRole = stage.Role{Name: "workload", Param: "workload", Holds: stage.HoldsWorkload, Hint: "a workload stage"}
	fitRole      = stage.Role{Name: "fit", Holds: stage.HoldsFit, Optional: true, Hint: "a fit stage"}
	profileRole  = stage.Role{Name: "profile", Holds: stage.HoldsProfile, Optional: true,
		Hint: "a profile stage (or set with.profile to a profile folder)"}
	tablesRole = stage.Role{Name: "vidur tables", Kinds: []string{"vidur"},
		Hint: "a vidur stage, whose raw/predictions hold Vidur's tables (or set with.vidur_tables)"}
)

// roles are the inputs params make the stage read: the workload; with
// vidur-table Vidur's tables (unless with.vidur_tables names them);
// otherwise a fit and a profile where params name no file instead, one of
// them required when the predictor is chosen.
func (p *Params) roles() []stage.Role {
	roles := []stage.Role{workloadRole}
	if p.Interpolation == predict.InterpVidurTable {
		if p.VidurTables == "" {
			roles = append(roles, tablesRole)
		}
		return roles
	}
	fit, prof := fitRole, profileRole
	switch p.Predictor {
	case PredictorStepModel:
		fit.Optional = false
	case PredictorVidurProfile:
		prof.Optional = false
	}
	if p.StepModel == "" {
		roles = append(roles, fit)
	}
	if p.Profile == "" {
		roles = append(roles, prof)
	}
	return roles
}

func resolve(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}
