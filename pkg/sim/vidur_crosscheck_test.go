package sim

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// TestMatchesRecordedVidur replays the workload of a recorded real Vidur run
// (testdata/vidur/qwen3-h100-vllm-300: vllm scheduler, the recorded H100
// profile, random-forest predictor) through the embedded vllm policy with
// Vidur's resolved settings, and compares P50/P90/P99 of TTFT, E2E and TPOT.
//
// vidur-table feeds the vidur-profile decomposition with the prediction
// tables Vidur itself looked every iteration up in (exported by the shim
// into raw/predictions), so the execution-time model is Vidur's to the bit
// and only the scheduler, the event loop and the decomposition are gsim's:
// it must land within 2% of Vidur for TTFT and E2E P50/P99 (the
// requirement), and ask nothing outside Vidur's tables.
//
// forest, nearest and linear are gsim's own readings of the profile. Their
// end-to-end numbers are logged, not asserted, save a regression guard of
// 8% on forest's TTFT/E2E P50/P99 (docs/simulator.md): on this trace ±0.1%
// in step time moves TTFT P50 by up to 4% (an arrival just before or after
// an iteration ends lands in a different batch, and vllm runs prefills
// alone), so their per-iteration agreement is what TestVidurStepTimes
// asserts.
func TestMatchesRecordedVidur(t *testing.T) {
	t.Run(predict.InterpVidurTable, func(t *testing.T) {
		out := t.TempDir()
		compareVidur(t, predict.InterpVidurTable, simulateKind(t, predict.InterpVidurTable, out), 0.02)
		meta, err := schema.ReadRunMeta(filepath.Join(out, schema.RunMetaFile))
		if err != nil {
			t.Fatal(err)
		}
		pred, _ := meta.Engine["predictor"].(map[string]any)
		if n, ok := pred["table_misses"].(float64); !ok || n != 0 {
			t.Errorf("table_misses %v: lookups outside Vidur's tables (Vidur would have raised KeyError), so the batches differ from any Vidur forms", pred["table_misses"])
		}
		sameRun(t, recordedVidur(t), out)
	})
	for _, interp := range []string{predict.InterpForest, predict.InterpNearest, predict.InterpLinear} {
		t.Run(interp, func(t *testing.T) {
			limit := math.Inf(1)
			if interp == predict.InterpForest {
				limit = 0.08
			}
			compareVidur(t, interp, simulateKind(t, interp, t.TempDir()), limit)
		})
	}
}

// crossCheckModel is Qwen3-0.6B as Vidur's predictor sees it.
var crossCheckModel = predict.VidurModel{NumLayers: 28, NumQHeads: 16, NumKVHeads: 8, Hidden: 1024, PostAttnNorm: true}

func recordedVidur(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "testdata", "vidur", "qwen3-h100-vllm-300")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no recorded Vidur run")
	}
	return dir
}

// recordedEngine is the recorded run's resolved Vidur settings.
func recordedEngine(t *testing.T) map[string]any {
	t.Helper()
	meta, err := schema.ReadRunMeta(filepath.Join(recordedVidur(t), schema.RunMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	return meta.Engine
}

// simulateKind runs the recorded workload through the sim kind with
// vidur-profile read with interp into out. The recorded Vidur run is an
// input, as a vidur stage under needs: would be, so vidur-table
// finds its raw/predictions.
func simulateKind(t *testing.T, interp, out string) map[string][]float64 {
	t.Helper()
	root, dir, e := repoRoot(t), recordedVidur(t), recordedEngine(t)
	spec := &stage.Spec{Instance: "sim", Key: "crosscheck", BaseDir: root, OutDir: out,
		Params: map[string]any{
			"scheduler":        "vllm",
			"predictor":        PredictorVidurProfile,
			"block_size":       e["block_size"],
			"num_blocks":       e["num_blocks"],
			"batch_size_cap":   e["batch_size_cap"],
			"max_batch_tokens": e["max_batch_tokens"],
			"max_tokens":       e["max_tokens"],
			"watermark":        0.01,
			"hardware":         "h100",
			"interpolation":    interp,
		},
		Inputs: map[string][]stage.Input{
			"workload": {{Instance: "workload", Kind: "workload", Dir: filepath.Join(dir, "workload")}},
			"profile":  {{Instance: "profile", Kind: "profile", Dir: filepath.Join(root, "testdata", "profile", "h100")}},
			"vidur":    {{Instance: "vidur", Kind: "vidur", Dir: dir}},
		}}
	if err := NewKind().Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	return requestSamples(t, out)
}

// sameRun checks request by request and iteration by iteration that the
// simulation in got is the Vidur run in ref: the same batches (shapes), and
// the same times up to nanosecond rounding (Vidur keeps float seconds, gsim
// integer nanoseconds per step, so the difference may grow by a nanosecond
// an iteration).
func sameRun(t *testing.T, ref, got string) {
	t.Helper()
	rs, err := schema.ReadStepMetrics(filepath.Join(ref, schema.StepMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	gs, err := schema.ReadStepMetrics(filepath.Join(got, schema.StepMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(gs) {
		t.Errorf("%d iterations, Vidur ran %d", len(gs), len(rs))
	}
	tol := int64(len(rs)) + 1
	var worst int64
	for i := range min(len(rs), len(gs)) {
		r, g := rs[i], gs[i]
		if r.NumPrefillTokens != g.NumPrefillTokens || r.NumDecodeTokens != g.NumDecodeTokens || r.NumRequests != g.NumRequests ||
			r.NumContextTokens != g.NumContextTokens {
			t.Fatalf("iteration %d: gsim's batch (prefill %d, decode %d tokens, %d requests, context %d) is not Vidur's (%d, %d, %d, %d)",
				i, g.NumPrefillTokens, g.NumDecodeTokens, g.NumRequests, g.NumContextTokens,
				r.NumPrefillTokens, r.NumDecodeTokens, r.NumRequests, r.NumContextTokens)
		}
		worst = max(worst, abs64(r.StartNs-g.StartNs), abs64(r.EndNs-g.EndNs))
	}
	rr, err := schema.ReadRequestMetrics(filepath.Join(ref, schema.RequestMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	gr, err := schema.ReadRequestMetrics(filepath.Join(got, schema.RequestMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]schema.RequestMetric{}
	for _, r := range gr {
		byID[r.RequestID] = r
	}
	for _, r := range rr {
		g, ok := byID[r.RequestID]
		if !ok {
			t.Fatalf("request %d: not simulated", r.RequestID)
		}
		worst = max(worst, abs64(r.FirstTokenTimeNs-g.FirstTokenTimeNs), abs64(r.CompletionTimeNs-g.CompletionTimeNs))
	}
	t.Logf("%d iterations and %d requests; largest time difference %d ns (allowed %d)", len(rs), len(rr), worst, tol)
	if worst > tol {
		t.Errorf("times differ by up to %d ns, more than nanosecond rounding over %d iterations", worst, len(rs))
	}
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// compareVidur logs P50/P90/P99 of TTFT, E2E and TPOT against the recorded
// Vidur run and fails where TTFT or E2E P50/P99 is further than limit.
func compareVidur(t *testing.T, name string, got map[string][]float64, limit float64) {
	t.Helper()
	// The recording leaves token_metrics.csv out, so compare on what
	// request_metrics.csv holds.
	ref := requestSamples(t, recordedVidur(t))
	for _, m := range []string{analysis.TTFT, analysis.E2E, analysis.TPOT} {
		rs, gs := analysis.Summarize(ref[m]), analysis.Summarize(got[m])
		for _, s := range []string{analysis.StatP50, analysis.StatP90, analysis.StatP99} {
			rel := analysis.RelError(rs.Get(s), gs.Get(s))
			t.Logf("%s %s %s: vidur %.3f ms, gsim %.3f ms, %+.2f%%", name, m, s, rs.Get(s), gs.Get(s), 100*rel)
			if (m == analysis.TTFT || m == analysis.E2E) && (s == analysis.StatP50 || s == analysis.StatP99) && !(math.Abs(rel) <= limit) {
				t.Errorf("%s %s %s off by %+.2f%% (limit %.0f%%)", name, m, s, 100*rel, 100*limit)
			}
		}
	}
}

// TestVidurStepTimes re-predicts every iteration of the recorded Vidur run
// whose shape step_metrics.csv gives exactly (lone prefills over an empty
// cache, and decodes) from its batch composition. Read through Vidur's
// exported tables, every such iteration must take Vidur's time to the
// nanosecond Vidur's output was rounded to: the decomposition is Vidur's.
// gsim's own forest reading must agree within 2% in total and in median,
// for prefill and for decode iterations; nearest and linear are logged.
func TestVidurStepTimes(t *testing.T) {
	root, dir := repoRoot(t), recordedVidur(t)
	prof, err := profile.Read(filepath.Join(root, "testdata", "profile", "h100"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := schema.ReadStepMetrics(filepath.Join(dir, schema.StepMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, interp := range []string{predict.InterpVidurTable, predict.InterpForest, predict.InterpNearest, predict.InterpLinear} {
		t.Run(interp, func(t *testing.T) {
			o := predict.NewVidurOptions()
			o.Interpolation = interp
			if interp == predict.InterpVidurTable {
				o.TablesDir = filepath.Join(dir, "raw", "predictions")
			}
			p, err := predict.NewVidurProfile(prof, crossCheckModel, o)
			if err != nil {
				t.Fatal(err)
			}
			stepTimes(t, p, steps)
		})
	}
}

func stepTimes(t *testing.T, p *predict.VidurProfile, steps []schema.StepMetric) {
	interp := p.Describe()["interpolation"]
	type acc struct {
		rel       []float64
		got, want float64
		worstMs   float64
	}
	var pre, dec acc
	for _, st := range steps {
		var b sched.Batch
		switch {
		case st.NumPrefillTokens > 0 && st.NumRequests == 1 && st.NumContextTokens == st.NumPrefillTokens:
			// A lone prefill over an empty cache: its shape is exact.
			b.Entries = []sched.Entry{{Req: sched.NewRequest(0, 0, 0, st.NumPrefillTokens, 1), Tokens: st.NumPrefillTokens, Prefill: true}}
		case st.NumPrefillTokens == 0:
			// Decodes: Vidur reads the mean processed length, which the
			// recorded context total gives exactly.
			avg := st.NumContextTokens / st.NumRequests
			for i := int64(0); i < st.NumRequests; i++ {
				b.Entries = append(b.Entries, sched.Entry{Req: sched.NewRequest(0, 0, 0, 1, 1), Tokens: 1, ProcessedBefore: avg})
			}
		default:
			continue
		}
		got, want := p.StepMs(&b), float64(st.EndNs-st.StartNs)/1e6
		a := &dec
		if st.NumPrefillTokens > 0 {
			a = &pre
		}
		a.rel = append(a.rel, got/want-1)
		a.got += got
		a.want += want
		a.worstMs = max(a.worstMs, math.Abs(got-want))
	}
	for name, a := range map[string]*acc{"prefill": &pre, "decode": &dec} {
		if len(a.rel) < 50 {
			t.Fatalf("%s: only %d iterations to compare", name, len(a.rel))
		}
		slices.Sort(a.rel)
		med := analysis.Quantile(a.rel, 0.5)
		total := a.got/a.want - 1
		t.Logf("%s %s: %d iterations, total %+.2f%%, median %+.2f%%, P10 %+.2f%%, P90 %+.2f%%, largest difference %.6f ms", interp, name, len(a.rel),
			100*total, 100*med, 100*analysis.Quantile(a.rel, 0.1), 100*analysis.Quantile(a.rel, 0.9), a.worstMs)
		switch interp {
		case predict.InterpVidurTable:
			// Vidur's step times were rounded to whole nanoseconds,
			// start and end each.
			if a.worstMs > 2e-6 {
				t.Errorf("%s iterations: up to %.6f ms from Vidur's own prediction", name, a.worstMs)
			}
		case predict.InterpForest:
			if math.Abs(total) > 0.02 || math.Abs(med) > 0.02 {
				t.Errorf("%s iterations: total %+.2f%%, median %+.2f%% (limit 2%%)", name, 100*total, 100*med)
			}
		}
	}
}

// requestSamples reads TTFT, E2E and TPOT (ms, sorted) from a run folder's
// request_metrics.csv.
func requestSamples(t *testing.T, dir string) map[string][]float64 {
	t.Helper()
	rows, err := schema.ReadRequestMetrics(filepath.Join(dir, schema.RequestMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]float64{}
	for _, r := range rows {
		m[analysis.TTFT] = append(m[analysis.TTFT], float64(r.TTFTNs)/1e6)
		m[analysis.E2E] = append(m[analysis.E2E], float64(r.CompletionTimeNs-r.ArrivalTimeNs)/1e6)
		if r.NumDecodeTokensActual > 1 {
			m[analysis.TPOT] = append(m[analysis.TPOT], float64(r.CompletionTimeNs-r.FirstTokenTimeNs)/1e6/float64(r.NumDecodeTokensActual-1))
		}
	}
	for _, v := range m {
		slices.Sort(v)
	}
	return m
}
