package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/stage"
)

func writeWorkload(t *testing.T, dir string, n int, rate float64, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	w := &schema.Workload{Meta: schema.WorkloadMeta{Model: "Qwen/Qwen3-0.6B", Seed: int64(seed)}}
	var at int64
	for i := 0; i < n; i++ {
		gap := int64(rng.ExpFloat64() / rate * 1e9)
		at += gap
		w.Requests = append(w.Requests, schema.Request{ID: int64(i), PromptID: int64(i),
			NumPrefillTokens: 1 + rng.Int64N(400), NumDecodeTokens: 1 + rng.Int64N(100), InterArrivalNs: gap, ArrivalTimeNs: at})
	}
	if err := schema.WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
}

func repoRoot(t *testing.T) string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestSimKindStepModel(t *testing.T) {
	tmp := t.TempDir()
	wdir := filepath.Join(tmp, "workload")
	writeWorkload(t, wdir, 200, 4, 1)
	fdir := filepath.Join(tmp, "fit")
	os.MkdirAll(fdir, 0o755)
	m := &predict.StepModel{SchemaVersion: 1, Features: []string{predict.FeatIntercept, predict.FeatPrefillTokens, predict.FeatRequests},
		Coef: []float64{25e6, 10e3, 300e3}, InterStepGapNs: 2e6, MinStepNs: 1}
	if err := m.Write(filepath.Join(fdir, StepModelFile)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	os.MkdirAll(out, 0o755)
	spec := &stage.Spec{Instance: "sim", Key: "k", BaseDir: repoRoot(t), OutDir: out,
		Params: map[string]any{"scheduler": "hf-cb", "max_batch_tokens": 256},
		Inputs: map[string][]stage.Input{
			"workload": {{Instance: "workload", Kind: "workload", Dir: wdir}},
			"fit":      {{Instance: "fit", Kind: "fit", Dir: fdir}},
		}}
	k := NewKind()
	if err := k.CheckParams(spec.Params); err != nil {
		t.Fatal(err)
	}
	if err := k.Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	if err := k.Validate(spec); err != nil {
		t.Fatal(err)
	}
	run, err := schema.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	if run.Meta.RunType != schema.RunSim || run.Meta.Engine["scheduler"] != "hf-cb" || len(run.Requests) != 200 {
		t.Fatalf("meta %+v, %d requests", run.Meta, len(run.Requests))
	}
	d, _ := schema.WorkloadDigest(wdir)
	if run.Meta.WorkloadDigest != d {
		t.Fatal("workload digest not recorded")
	}
	// Every step is at least the model's intercept long.
	for _, s := range run.Steps {
		if s.EndNs-s.StartNs < 25e6 {
			t.Fatalf("step %d lasted %d ns", s.Step, s.EndNs-s.StartNs)
		}
	}
}

func TestSimKindParams(t *testing.T) {
	k := NewKind()
	for _, c := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"scheduler": "fcfs"}, "with.scheduler"},
		{map[string]any{"watermark": 1.5}, "with.watermark"},
		{map[string]any{"max_batch_token": 5}, "with.max_batch_token"},
		{map[string]any{"engine": "vidur"}, "with.engine: real Vidur is its own kind now: write `uses: vidur` instead of `uses: sim`"},
		{map[string]any{"engine": "vllm"}, "with.engine: \"vllm\"; the sim kind is gsim's embedded simulator"},
	} {
		err := k.CheckParams(c.params)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want it to mention %q", c.params, err, c.want)
		}
	}
}

// synthRun writes a run folder whose steps follow a known linear law.
func synthRun(t *testing.T, dir string, seed uint64, n int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	rng := rand.New(rand.NewPCG(seed, 3))
	var rows []schema.StepMetric
	var at int64
	for i := 0; i < n; i++ {
		pre := int64(0)
		if rng.IntN(4) == 0 {
			pre = rng.Int64N(500)
		}
		dec := rng.Int64N(32)
		reqs := dec
		if pre > 0 {
			reqs++
		}
		if reqs == 0 {
			dec, reqs = 1, 1
		}
		ctx := dec*(100+rng.Int64N(800)) + pre
		d := 20e6 + 12e3*float64(pre) + 40e3*float64(dec) + 30*float64(ctx) + 250e3*float64(reqs) + 0.2*float64(pre*pre)
		d *= 1 + 0.01*rng.NormFloat64()
		rows = append(rows, schema.StepMetric{Step: int64(i), StartNs: at, EndNs: at + int64(d), NumPrefillTokens: pre,
			NumDecodeTokens: dec, NumRequests: reqs, NumPrefillRequests: min(pre, 1), NumDecodeRequests: dec, NumContextTokens: ctx})
		at += int64(d) + 1_500_000
	}
	if err := schema.WriteStepMetrics(filepath.Join(dir, schema.StepMetricsFile), rows); err != nil {
		t.Fatal(err)
	}
}

func TestFitSelectsTrainingCells(t *testing.T) {
	tmp := t.TempDir()
	var inputs []stage.Input
	for i, rate := range []any{1, 4, 16, 64} {
		dir := filepath.Join(tmp, "bench", string(rune('a'+i)))
		synthRun(t, dir, uint64(i), 800)
		inputs = append(inputs, stage.Input{Instance: fmt.Sprintf("bench[rate=%v]", rate),
			Kind: "real-bench", Holds: stage.HoldsRun, Dir: dir, Matrix: map[string]any{"rate": rate}})
	}
	out := filepath.Join(tmp, "out")
	os.MkdirAll(out, 0o755)
	spec := &stage.Spec{Instance: "fit", OutDir: out, Inputs: map[string][]stage.Input{"bench": inputs},
		Params: map[string]any{"train": map[string]any{"rate": []any{1, 4.0, 16}}}}
	k := NewFitKind()
	if err := k.CheckParams(spec.Params); err != nil {
		t.Fatal(err)
	}
	if err := k.Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	if err := k.Validate(spec); err != nil {
		t.Fatal(err)
	}
	m, err := predict.ReadStepModel(filepath.Join(out, StepModelFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Training) != 3 {
		t.Fatalf("trained on %d cells, want 3", len(m.Training))
	}
	for _, c := range m.Training {
		if v, _ := toFloat(c.Matrix["rate"]); v == 64 {
			t.Fatal("held-out cell rate=64 was trained on")
		}
	}
	if m.NumSteps != 3*800 {
		t.Fatalf("fitted %d steps", m.NumSteps)
	}
	if m.R2 < 0.99 {
		t.Fatalf("R² %.4f on a noiseless-ish linear law", m.R2)
	}
	if got := m.Coef[0]; math.Abs(got-20e6)/20e6 > 0.05 {
		t.Fatalf("intercept %.0f, want about 20e6", got)
	}
	if m.GapNs() != 1_500_000 {
		t.Fatalf("gap %d, want 1.5 ms", m.GapNs())
	}
	report, _ := os.ReadFile(filepath.Join(out, FitReportFile))
	if !strings.Contains(string(report), "held out") {
		t.Fatal("fit.md does not list the held-out cell")
	}
	// Selecting nothing is an error that names the cells.
	spec.Params = map[string]any{"train": map[string]any{"rate": []any{2}}}
	os.RemoveAll(out)
	os.MkdirAll(out, 0o755)
	if err := k.Run(context.Background(), spec, stage.Env{}); err == nil || !strings.Contains(err.Error(), "selects none") {
		t.Fatalf("err = %v", err)
	}
}

func TestSimKindVidurProfile(t *testing.T) {
	tmp := t.TempDir()
	wdir := filepath.Join(tmp, "workload")
	writeWorkload(t, wdir, 100, 10, 2)
	pdir := filepath.Join(tmp, "profile")
	prof := &profile.Profile{Device: "h100", Model: "Qwen/Qwen3-0.6B"}
	for _, n := range []int{1, 8, 64, 512, 2048} {
		r := profile.MLPRow{NumTokens: n, TimeMs: map[string]float64{}, NHead: 16, NKVHead: 8, NEmbd: 1024,
			NExpandedEmbd: 3072, VocabSize: 151936, UseGatedMLP: true, NumTensorParallelWorkers: 1}
		for _, op := range profile.MLPOps {
			r.TimeMs[op] = 0.005 + 1e-5*float64(n)
		}
		prof.MLP = append(prof.MLP, r)
	}
	row := func(prefill bool, b, chunk, kv int, ms float64) profile.AttentionRow {
		r := profile.AttentionRow{BatchSize: b, PrefillChunkSize: chunk, KVCacheSize: kv, IsPrefill: prefill,
			TimeMs: map[string]float64{"attn_input_reshape": 0.001, "attn_kv_cache_save": 0.002, "attn_output_reshape": 0.001},
			NEmbd:  1024, NQHead: 16, NKVHead: 8, BlockSize: 16, NumTensorParallelWorkers: 1, MaxModelLen: 4096,
			AttentionBackend: "paged|sdpa"}
		if prefill {
			r.TimeMs["attn_prefill"] = ms
		} else {
			r.TimeMs["attn_decode"] = ms
		}
		return r
	}
	for _, kv := range []int{0, 1024} {
		for _, c := range []int{16, 512} {
			prof.Attention = append(prof.Attention, row(true, 1, c, kv, 0.01+1e-5*float64(kv+c)))
		}
	}
	for _, b := range []int{1, 32} {
		for _, kv := range []int{64, 1024} {
			prof.Attention = append(prof.Attention, row(false, b, 0, kv, 0.01+1e-6*float64(b*kv)))
		}
	}
	if err := profile.Write(pdir, prof); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	os.MkdirAll(out, 0o755)
	spec := &stage.Spec{Instance: "sim", Key: "k", BaseDir: repoRoot(t), OutDir: out,
		Params: map[string]any{"scheduler": "vllm", "hardware": "h100"},
		Inputs: map[string][]stage.Input{
			"workload": {{Instance: "workload", Kind: "workload", Dir: wdir}},
			"profile":  {{Instance: "profile", Kind: "profile", Dir: pdir}},
		}}
	if err := NewKind().Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	run, err := schema.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	pm, _ := run.Meta.Engine["predictor"].(map[string]any)
	if pm["name"] != PredictorVidurProfile || run.Meta.Engine["num_blocks_derived"] != true {
		t.Fatalf("engine meta %v", run.Meta.Engine)
	}
	// 28 layers × 9 ops × ≥ 5 µs: no step can be shorter than 1.26 ms.
	for _, s := range run.Steps {
		if s.EndNs-s.StartNs < 1_260_000 {
			t.Fatalf("step %d lasted %d ns", s.Step, s.EndNs-s.StartNs)
		}
	}
}

// A sim stage that only names its workload and fit simulates the engine the
// fit measured: hf-cb settings it does not give come from the training
// runs' run_meta.json.
func TestSimInheritsFittedEngine(t *testing.T) {
	root := repoRoot(t)
	real := filepath.Join(root, "testdata", "real", "h100-qwen3-0.6b")
	if _, err := os.Stat(real); err != nil {
		t.Skip("no recorded real runs")
	}
	tmp := t.TempDir()
	fitOut := filepath.Join(tmp, "fit")
	os.MkdirAll(fitOut, 0o755)
	var ins []stage.Input
	for _, rate := range []int{2, 6} {
		ins = append(ins, stage.Input{Instance: fmt.Sprintf("bench[rate=%d]", rate), Kind: "real-bench", Holds: stage.HoldsRun,
			Dir: filepath.Join(real, fmt.Sprintf("rate-%d", rate), "run"), Matrix: map[string]any{"rate": rate}})
	}
	if err := NewFitKind().Run(context.Background(), &stage.Spec{Instance: "fit", OutDir: fitOut,
		Inputs: map[string][]stage.Input{"bench": ins}}, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "out")
	os.MkdirAll(out, 0o755)
	spec := &stage.Spec{Instance: "sim", Key: "k", BaseDir: root, OutDir: out, Params: map[string]any{"max_batch_tokens": 4096},
		Inputs: map[string][]stage.Input{
			"workload": {{Instance: "workload", Kind: "workload", Dir: filepath.Join(real, "rate-4", "workload")}},
			"fit":      {{Instance: "fit", Kind: "fit", Dir: fitOut}},
		}}
	if err := NewKind().Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	meta, err := schema.ReadRunMeta(filepath.Join(out, schema.RunMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	e := meta.Engine
	if e["block_size"] != 256.0 || e["num_blocks"] != 1024.0 || e["num_blocks_derived"] != false ||
		e["max_batch_tokens"] != 4096.0 || e["safety_margin"] != 0.15 {
		t.Fatalf("engine %v: want the fitted engine's block_size 256, num_blocks 1024, safety_margin 0.15 and the given max_batch_tokens 4096", e)
	}
}

func TestTrainMiss(t *testing.T) {
	sweep := []map[string]any{{"rate": 2}, {"rate": 4}, {"rate": 2.5}, {"rate": 4}}
	tests := []struct {
		name  string
		train map[string][]any
		cells []map[string]any
		want  string
	}{
		// It printed Go maps: "with.train map[rate:[3 5]] … (real[rate=2] map[rate:2]; …)".
		{"values not in the matrix", map[string][]any{"rate": {3, 5}}, sweep,
			"rate: [3, 5], the inputs have rate 2, 4, 2.5"},
		{"variable not in the matrix", map[string][]any{"rat": {2}}, sweep,
			`rat: [2], but the inputs have no matrix variable "rat" (they have rate)`},
		{"no matrix", map[string][]any{"rate": {2}}, []map[string]any{nil},
			"rate: [2], but the inputs are not a matrix (fit them all: leave train out)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trainMiss(tt.train, tt.cells); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// Train values that select no cell were found only when the fit ran, after
// every real run; CheckNeeds lets the loader report them at their line.
func TestFitCheckNeeds(t *testing.T) {
	matrix := map[string][]any{"rate": {2, 4, 6.5}, "policy": {"vllm"}}
	tests := []struct {
		name  string
		train map[string]any
		want  string
	}{
		{"all present", map[string]any{"rate": []any{2, 4}}, ""},
		{"some present", map[string]any{"rate": []any{2, 8}}, ""},
		{"int and float", map[string]any{"rate": []any{6.5, 4.0}}, ""},
		{"none present", map[string]any{"rate": []any{3, 5}}, "with.train.rate: [3, 5] selects no cell: matrix.rate is [2, 4, 6.5]"},
		{"not a variable", map[string]any{"rat": []any{2}}, `with.train.rat: "rat" is not a matrix variable (the matrix has policy, rate)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := FitKind{}.CheckNeeds(map[string]any{"train": tt.train}, []string{"real"}, matrix)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// Paths in with: that do not exist were "cannot read x: open /abs/x: no such
// file or directory" and "hash runner /abs/p: lstat /abs/p: …".
func TestSimFingerprintBadPaths(t *testing.T) {
	base := t.TempDir()
	k := NewKind()
	for param, want := range map[string]string{
		"step_model":   "with.step_model: no such file nope.json (" + filepath.Join(base, "nope.json") + "); check the path",
		"model_config": "with.model_config: no such file nope.json (" + filepath.Join(base, "nope.json") + "); check the path",
		"profile":      "with.profile: no such folder nope.json (" + filepath.Join(base, "nope.json") + "); check the path",
	} {
		params := map[string]any{"engine": "embedded", param: "nope.json"}
		if _, err := k.Fingerprint(params, base); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", param, err, want)
		}
	}
}
