package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/engine"
	"github.com/gsim-dev/gsim/pkg/sim/kv"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Version is the embedded simulator's runner identity: bump it whenever the
// same params and inputs could give different outputs.
const Version = "5"

// Kind is the `sim` stage kind: gsim's embedded simulator. Real Vidur is
// the `vidur` kind (pkg/vidur).
type Kind struct{}

// NewKind returns the sim kind.
func NewKind() stage.Kind { return &Kind{} }

func (k *Kind) Name() string { return "sim" }

func (k *Kind) Version() string { return Version }

func (k *Kind) CheckParams(params map[string]any) error {
	_, err := decodeParams(params)
	return err
}

func (k *Kind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := decodeParams(params)
	if err != nil {
		return nil, err
	}
	fp := map[string]string{}
	for _, f := range []struct{ field, path string }{{"model_config", p.ModelConfig}, {"step_model", p.StepModel}} {
		if f.path == "" {
			continue
		}
		d, err := stage.ParamFileDigest(f.field, baseDir, f.path)
		if err != nil {
			return nil, err
		}
		fp["file:"+filepath.ToSlash(f.path)] = d
	}
	for _, f := range []struct{ field, path string }{{"profile", p.Profile}, {"vidur_tables", p.VidurTables}} {
		if f.path == "" {
			continue
		}
		d, err := stage.ParamDirDigest(f.field, baseDir, f.path)
		if err != nil {
			return nil, err
		}
		fp["dir:"+filepath.ToSlash(f.path)] = d
	}
	return fp, nil
}

func (k *Kind) Resources(map[string]any) map[string]int { return nil }

// Produces implements stage.Producer: a run folder.
func (k *Kind) Produces() string { return stage.HoldsRun }

// InputRoles implements stage.InputReader (see Params.roles).
func (k *Kind) InputRoles(params map[string]any) []stage.Role {
	p, err := decodeParams(params)
	if err != nil {
		return nil // CheckParams reports it
	}
	return p.roles()
}

func (k *Kind) Validate(spec *stage.Spec) error {
	return schema.ValidateRun(spec.OutDir)
}

func (k *Kind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decodeParams(spec.Params)
	if err != nil {
		return err
	}
	win, _, err := stage.FindInput(spec, workloadRole)
	if err != nil {
		return err
	}
	wdir := win.Dir
	w, err := schema.ReadWorkload(wdir)
	if err != nil {
		return fmt.Errorf("sim %s: %w", spec.Instance, err)
	}
	digest, err := schema.WorkloadDigest(wdir)
	if err != nil {
		return fmt.Errorf("sim %s: %w", spec.Instance, err)
	}
	setup, err := prepare(p, spec, w)
	if err != nil {
		return fmt.Errorf("sim %s: %w", spec.Instance, err)
	}
	if setup.warmup, err = setup.warmUp(p, w); err != nil {
		return fmt.Errorf("sim %s: %w", spec.Instance, err)
	}
	started := time.Now().UTC()
	sink, err := engine.NewFolderSink(spec.OutDir, p.tokens(), len(w.Requests))
	if err != nil {
		return fmt.Errorf("sim %s: %w", spec.Instance, err)
	}
	n := len(w.Requests)
	every := max(1, n/100)
	res, runErr := engine.Run(w.Requests, setup.sched, setup.pred, sink, engine.Options{
		ProgressEvery: every,
		Progress: func(done, total int) {
			env.Report(float64(done), float64(total), "requests")
		},
		Interrupt: ctx.Err,
	})
	if err := sink.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("sim %s: %w", spec.Instance, runErr)
	}
	ended := time.Now().UTC()
	// No wall-clock times in run_meta.json: a simulation's outputs are a
	// function of its inputs, so a forced rerun leaves the output digest,
	// and everything downstream, as it was. The store's manifest and the
	// stage log say when it ran and how long it took.
	meta := &schema.RunMeta{
		RunID:          spec.Key,
		RunType:        schema.RunSim,
		Model:          setup.model,
		Hardware:       map[string]any{"name": p.Hardware, "simulated": true},
		Engine:         setup.engineMeta(p, res),
		WorkloadDigest: digest,
	}
	if meta.RunID == "" {
		meta.RunID = spec.Instance
	}
	if err := schema.WriteRunMeta(filepath.Join(spec.OutDir, schema.RunMetaFile), meta); err != nil {
		return fmt.Errorf("sim %s: %w", spec.Instance, err)
	}
	if env.Log != nil {
		fmt.Fprintf(env.Log, "simulated %d requests in %d iterations, %.3f s of simulated time (%s, %s), %s wall\n",
			n, res.Steps, float64(res.EndNs)/1e9, setup.sched.Name(), setup.pred.Name(), ended.Sub(started).Round(time.Millisecond))
	}
	return nil
}

// setup is everything a run needs besides the workload.
type setup struct {
	model     string
	modelCfg  *kv.Model
	numBlocks int64
	derived   bool
	sched     sched.Scheduler
	pred      predict.Predictor
	inherited []string // hf-cb settings taken from the fitted engine
	warmup    int      // warm-up requests simulated before the replay
	// tables says where vidur-table's tables came from without a path of
	// this machine: the input instance, or with.vidur_tables as written.
	tables string
}

func (s *setup) engineMeta(p *Params, res engine.Result) map[string]any {
	pred := s.pred.Describe()
	if _, ok := pred["vidur_tables"]; ok {
		pred["vidur_tables"] = s.tables
	}
	return map[string]any{
		"name":               "gsim-embedded",
		"version":            Version,
		"scheduler":          s.sched.Name(),
		"predictor":          pred,
		"block_size":         p.BlockSize,
		"num_blocks":         s.numBlocks,
		"num_blocks_derived": s.derived,
		"max_batch_tokens":   p.MaxBatchTokens,
		"batch_size_cap":     p.BatchSizeCap,
		"chunk_size":         p.ChunkSize,
		"watermark":          *p.Watermark,
		"safety_margin":      *p.SafetyMargin,
		"max_kv_read":        p.MaxKVRead,
		"max_tokens":         p.MaxTokens,
		"gpu_memory_gb":      p.GPUMemoryGB,
		"memory_utilization": p.MemoryUtilization,
		"steps":              res.Steps,
		"restarts":           res.Restarts,
		"peak_kv_blocks":     res.PeakBlocks,
		"simulated_end_ns":   res.EndNs,
		"inherited_from_fit": s.inherited,
		"warmup_requests":    s.warmup,
	}
}

// prepare resolves the model, the block pool, the policy and the predictor.
func prepare(p *Params, spec *stage.Spec, w *schema.Workload) (*setup, error) {
	s := &setup{model: p.Model}
	if s.model == "" {
		s.model = w.Meta.Model
	}
	cfgPath := resolve(spec.BaseDir, p.ModelConfig)
	if cfgPath == "" {
		if s.model == "" {
			return nil, errors.New("no model: the workload names none; set with.model or with.model_config")
		}
		dir, err := stage.RunnerDir("models", spec.BaseDir)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w; or set with.model_config to its config.json", s.model, err)
		}
		cfgPath = filepath.Join(dir, path.Base(s.model), "config.json")
		if _, err := os.Stat(cfgPath); err != nil {
			return nil, fmt.Errorf("model %s: no %s; add its config.json under stages/models/ or set with.model_config", s.model, cfgPath)
		}
	}
	m, err := kv.ReadModel(cfgPath)
	if err != nil {
		return nil, err
	}
	s.modelCfg = m
	pred := p.Predictor
	var fitDir, profDir string
	var hasFit, hasProf bool
	for _, r := range p.roles() {
		in, ok, err := stage.FindInput(spec, r)
		if err != nil {
			return nil, err
		}
		switch r.Name {
		case fitRole.Name:
			fitDir, hasFit = in.Dir, ok
		case profileRole.Name:
			profDir, hasProf = in.Dir, ok
		}
	}
	if pred == "" {
		switch {
		case p.Interpolation == predict.InterpVidurTable:
			pred = PredictorVidurProfile
		case hasFit || p.StepModel != "":
			pred = PredictorStepModel
		case hasProf || p.Profile != "":
			pred = PredictorVidurProfile
		default:
			return nil, errors.New("no predictor input: add a `fit` stage (step-model) or a `profile` stage (vidur-profile) under needs:")
		}
	}
	switch pred {
	case PredictorStepModel:
		file := resolve(spec.BaseDir, p.StepModel)
		if file == "" {
			if !hasFit {
				return nil, errors.New("predictor step-model needs a `fit` stage under needs: or with.step_model")
			}
			file = filepath.Join(fitDir, StepModelFile)
		}
		sm, err := predict.ReadStepModel(file)
		if err != nil {
			return nil, err
		}
		var seed uint64
		if p.Seed != nil {
			seed = uint64(*p.Seed)
		}
		sm.SetSeed(seed)
		s.pred = sm
		if isHF(p.Scheduler) {
			s.inherited = p.inheritEngine(spec.Params, sm.Engine)
		}
	case PredictorVidurProfile:
		if p.Interpolation == predict.InterpVidurTable {
			vp, label, err := vidurTableProfile(p, spec, m)
			if err != nil {
				return nil, err
			}
			s.tables = label
			s.pred = vp
			break
		}
		dir := resolve(spec.BaseDir, p.Profile)
		if dir == "" {
			if !hasProf {
				return nil, errors.New("predictor vidur-profile needs a `profile` stage under needs: or with.profile")
			}
			dir = profDir
		}
		prof, err := profile.Read(dir)
		if err != nil {
			return nil, err
		}
		o := predict.NewVidurOptions()
		o.CPUOverhead = p.CPUOverhead
		o.Interpolation = p.Interpolation
		vp, err := predict.NewVidurProfile(prof, predict.VidurModel{NumLayers: m.NumLayers, NumQHeads: m.NumHeads,
			NumKVHeads: m.NumKVHeads, Hidden: m.HiddenSize, PostAttnNorm: true}, o)
		if err != nil {
			return nil, err
		}
		s.pred = vp
	}
	s.numBlocks = p.NumBlocks
	if s.numBlocks == 0 {
		s.derived = true
		s.numBlocks, err = kv.Sizing{GPUMemoryBytes: int64(p.GPUMemoryGB * (1 << 30)), MemoryUtilization: p.MemoryUtilization,
			ActivationReserve: int64(p.ActivationReserveGB * (1 << 30)), BlockSize: p.BlockSize}.NumBlocks(m)
		if err != nil {
			return nil, err
		}
	}
	s.sched, err = sched.New(p.Scheduler, p.schedConfig(s.numBlocks))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// inheritEngine fills the hf-cb settings the stage does not give from the
// real engine the step model was fitted on (its run_meta.json engine), so
// that `needs: [workload, fit]` simulates the engine that was measured. It
// returns the names it took.
func (p *Params) inheritEngine(raw map[string]any, eng map[string]any) []string {
	var took []string
	num := func(key string) (int64, bool) {
		v, ok := eng[key].(float64)
		return int64(v), ok && v > 0
	}
	set := func(param, key string, dst *int64) {
		if _, given := raw[param]; given {
			return
		}
		if v, ok := num(key); ok {
			*dst = v
			took = append(took, param)
		}
	}
	set("block_size", "block_size", &p.BlockSize)
	set("num_blocks", "num_blocks", &p.NumBlocks)
	set("max_batch_tokens", "max_batch_tokens", &p.MaxBatchTokens)
	set("batch_size_cap", "max_requests_per_batch", &p.BatchSizeCap)
	if _, given := raw["safety_margin"]; !given {
		if v, ok := eng["safety_margin"].(float64); ok {
			p.SafetyMargin = &v
			took = append(took, "safety_margin")
		}
	}
	if _, given := raw["scheduler"]; !given {
		if v, _ := eng["scheduler"].(string); v == "prefill_first" {
			p.Scheduler = "hf-cb-prefill-first"
			took = append(took, "scheduler")
		}
	}
	return took
}
