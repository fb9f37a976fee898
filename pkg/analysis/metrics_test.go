package analysis

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

const ms = int64(1e6)

// TestLoadRunDefinitions checks each metric's definition on a run small
// enough to compute by hand.
func TestLoadRunDefinitions(t *testing.T) {
	dir := t.TempDir()
	reqs := []schema.RequestMetric{
		{RequestID: 0, ArrivalTimeNs: 0, FirstTokenTimeNs: 10 * ms, TTFTNs: 10 * ms, CompletionTimeNs: 22 * ms,
			NumPrefillTokens: 8, NumDecodeTokens: 3, NumDecodeTokensActual: 3, Status: schema.StatusOK},
		// One output token: TPOT undefined, no gap.
		{RequestID: 1, ArrivalTimeNs: 5 * ms, FirstTokenTimeNs: 30 * ms, TTFTNs: 25 * ms, CompletionTimeNs: 30 * ms,
			NumPrefillTokens: 4, NumDecodeTokens: 1, NumDecodeTokensActual: 1, Status: schema.StatusOK},
		// Failed after two tokens: in no statistic, its 10 ms gap included.
		{RequestID: 2, ArrivalTimeNs: 8 * ms, FirstTokenTimeNs: 40 * ms, TTFTNs: 32 * ms, CompletionTimeNs: -1,
			NumPrefillTokens: 4, NumDecodeTokens: 4, NumDecodeTokensActual: 2, Status: schema.StatusFailed,
			ErrorType: "oom", ErrorMessage: "KV cache exhausted"},
	}
	tok := func(id, idx, at, gap int64) schema.TokenMetric {
		return schema.TokenMetric{RequestID: id, TokenIndex: idx, TokenTimeNs: at, TokenLatencyNs: gap}
	}
	toks := []schema.TokenMetric{
		tok(0, 0, 10*ms, 0), tok(0, 1, 15*ms, 5*ms), tok(0, 2, 22*ms, 7*ms),
		tok(1, 0, 30*ms, 0),
		tok(2, 0, 40*ms, 0), tok(2, 1, 50*ms, 10*ms),
	}
	must(t, schema.WriteRequestMetrics(filepath.Join(dir, schema.RequestMetricsFile), reqs))
	must(t, schema.WriteTokenMetrics(filepath.Join(dir, schema.TokenMetricsFile), toks))
	must(t, schema.WriteRunMeta(filepath.Join(dir, schema.RunMetaFile), &schema.RunMeta{SchemaVersion: 1, RunID: "x", RunType: schema.RunReal, Model: "Qwen/Qwen3-0.6B", WorkloadDigest: strings.Repeat("a", 64)}))
	r, err := LoadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float64{TTFT: {10, 25}, E2E: {22, 25}, TPOT: {6}, ITL: {5, 7}}
	for k, w := range want {
		if !slices.Equal(r.Samples[k].Sorted(), w) {
			t.Errorf("%s = %v, want %v", k, r.Samples[k].Sorted(), w)
		}
	}
	if r.TPOTExcluded != 1 {
		t.Errorf("TPOTExcluded = %d, want 1", r.TPOTExcluded)
	}
	if len(r.Failed) != 1 || r.Failed[0] != (Failed{2, "oom", "KV cache exhausted"}) {
		t.Errorf("Failed = %+v", r.Failed)
	}
	if len(r.Shapes) != 3 || r.HasSteps {
		t.Errorf("shapes %d, steps %v", len(r.Shapes), r.HasSteps)
	}

	steps := []schema.StepMetric{
		{Step: 0, StartNs: 0, EndNs: 4 * ms, NumPrefillTokens: 8, NumDecodeTokens: 0, NumRequests: 1, NumPrefillRequests: 1},
		{Step: 1, StartNs: 4 * ms, EndNs: 6 * ms, NumPrefillTokens: 0, NumDecodeTokens: 2, NumRequests: 2, NumDecodeRequests: 2},
	}
	must(t, schema.WriteStepMetrics(filepath.Join(dir, schema.StepMetricsFile), steps))
	r, err = LoadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][]float64{BatchSize: {1, 2}, IterTokens: {2, 8}, IterDuration: {2, 4}}
	for k, w := range want {
		if !slices.Equal(r.Samples[k].Sorted(), w) {
			t.Errorf("%s = %v, want %v", k, r.Samples[k].Sorted(), w)
		}
	}
	if !r.HasSteps {
		t.Error("HasSteps false with step_metrics.csv present")
	}

	must(t, os.Remove(filepath.Join(dir, schema.TokenMetricsFile)))
	if _, err := LoadRun(dir); err == nil {
		t.Error("a run without token_metrics.csv loaded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
