package report

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

var update = flag.Bool("update", false, "rewrite testdata fixtures and golden files")

// engine describes a fake engine's timing for fixture runs: a base TTFT plus
// a per-prompt-token cost, a queueing term that grows with the request's
// position, and a jittered inter-token gap.
type engine struct {
	runType   string
	ttftMs    float64
	perTokUs  float64
	queueMs   float64
	itlMs     float64
	jitter    float64 // fraction of itl added on every third token
	failed    map[int64]bool
	steps     bool
	digest    string // overrides the workload digest when set
	dropID    int64  // request left out when >= 0
	prefillAt int64  // request whose num_prefill_tokens is changed when >= 0
}

func fixtureWorkload(n int, rate float64) *schema.Workload {
	w := &schema.Workload{Meta: schema.WorkloadMeta{WorkloadID: "", Model: "Qwen/Qwen3-0.6B", Seed: 7,
		Params: map[string]any{"rate": rate}, CreatedAt: "2026-01-01T00:00:00Z", Generator: "report fixture"}}
	var t int64
	for i := 0; i < n; i++ {
		gap := int64(float64(1e9) / rate * (0.5 + float64((i*7)%5)/4))
		if i == 0 {
			gap = 0
		}
		t += gap
		decode := int64(1 + (i*5)%12) // request 0 has one output token: TPOT undefined
		w.Requests = append(w.Requests, schema.Request{ID: int64(i), PromptID: int64(i), NumPrefillTokens: int64(16 + (i*37)%120),
			NumDecodeTokens: decode, InterArrivalNs: gap, ArrivalTimeNs: t})
	}
	return w
}

func writeFixtureRun(t testing.TB, dir string, w *schema.Workload, digest string, e engine, load float64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tf, err := os.Create(filepath.Join(dir, schema.TokenMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	tw := schema.NewTokenMetricsWriter(tf)
	var reqs []schema.RequestMetric
	for i, q := range w.Requests {
		if q.ID == e.dropID {
			continue
		}
		m := schema.RequestMetric{RequestID: q.ID, ArrivalTimeNs: q.ArrivalTimeNs, NumPrefillTokens: q.NumPrefillTokens, NumDecodeTokens: q.NumDecodeTokens}
		if q.ID == e.prefillAt {
			m.NumPrefillTokens++
		}
		if e.failed[q.ID] {
			m.Status, m.ErrorType, m.ErrorMessage = schema.StatusFailed, "timeout", "no token within 30 s"
			m.FirstTokenTimeNs, m.TTFTNs, m.CompletionTimeNs = -1, -1, -1
			reqs = append(reqs, m)
			continue
		}
		ttft := e.ttftMs + e.perTokUs*float64(q.NumPrefillTokens)/1000 + e.queueMs*load*float64(i%4)
		tok := q.ArrivalTimeNs + int64(ttft*1e6)
		m.FirstTokenTimeNs, m.TTFTNs = tok, tok-q.ArrivalTimeNs
		prev := tok
		for k := int64(0); k < q.NumDecodeTokens; k++ {
			if k > 0 {
				gap := e.itlMs * (1 + load/10)
				if (int64(i)+k)%3 == 0 {
					gap *= 1 + e.jitter
				}
				tok = prev + int64(gap*1e6)
			}
			if err := tw.Write(schema.TokenMetric{RequestID: q.ID, TokenIndex: k, TokenTimeNs: tok, TokenLatencyNs: tok - prev}); err != nil {
				t.Fatal(err)
			}
			prev = tok
		}
		m.CompletionTimeNs, m.NumDecodeTokensActual, m.Status = prev, q.NumDecodeTokens, schema.StatusOK
		reqs = append(reqs, m)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	tf.Close()
	if err := schema.WriteRequestMetrics(filepath.Join(dir, schema.RequestMetricsFile), reqs); err != nil {
		t.Fatal(err)
	}
	if e.steps {
		var steps []schema.StepMetric
		var at int64
		for s := int64(0); s < 12; s++ {
			dur := int64((e.itlMs + float64(s%4)) * 1e6)
			n := 1 + (s*3)%5
			steps = append(steps, schema.StepMetric{Step: s, StartNs: at, EndNs: at + dur, NumPrefillTokens: (s % 3) * 40,
				NumDecodeTokens: n, NumRequests: n, NumPrefillRequests: min(s%3, 1), NumDecodeRequests: n - min(s%3, 1)})
			at += dur
		}
		if err := schema.WriteStepMetrics(filepath.Join(dir, schema.StepMetricsFile), steps); err != nil {
			t.Fatal(err)
		}
	}
	if e.digest != "" {
		digest = e.digest
	}
	meta := &schema.RunMeta{SchemaVersion: schema.Version, RunID: e.runType + "-fixture", RunType: e.runType, Model: "Qwen/Qwen3-0.6B",
		Hardware:       map[string]any{"gpu_name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "cuda": "12.4"},
		Engine:         map[string]any{"name": e.runType + "-engine", "scheduler": "fifo", "max_batch_size": 8},
		WorkloadDigest: digest, StartedAt: "2026-01-01T00:00:00Z", EndedAt: "2026-01-01T00:01:00Z"}
	if err := schema.WriteRunMeta(filepath.Join(dir, schema.RunMetaFile), meta); err != nil {
		t.Fatal(err)
	}
	if err := schema.ValidateRun(dir); err != nil {
		t.Fatalf("fixture %s is not a valid run folder: %v", dir, err)
	}
}

var (
	benchEngine = engine{runType: schema.RunReal, ttftMs: 20, perTokUs: 60, queueMs: 3, itlMs: 6, jitter: 0.3, steps: true, dropID: -1, prefillAt: -1}
	simEngine   = engine{runType: schema.RunSim, ttftMs: 18, perTokUs: 55, queueMs: 2, itlMs: 5.7, jitter: 0.2, steps: true,
		failed: map[int64]bool{5: true}, dropID: -1, prefillAt: -1}
	vidurEngine = engine{runType: schema.RunVidur, ttftMs: 22, perTokUs: 70, queueMs: 4, itlMs: 6.5, jitter: 0.1, dropID: -1, prefillAt: -1}
)

// writeFixtureSet writes a workload and bench/sim/vidur runs of it into dir.
func writeFixtureSet(t testing.TB, dir string, n int, rate float64, load float64) string {
	t.Helper()
	w := fixtureWorkload(n, rate)
	wdir := filepath.Join(dir, "workload")
	if err := schema.WriteWorkload(wdir, w); err != nil {
		t.Fatal(err)
	}
	digest, err := schema.WorkloadDigest(wdir)
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]engine{"bench": benchEngine, "sim": simEngine, "vidur": vidurEngine} {
		writeFixtureRun(t, filepath.Join(dir, name), w, digest, e, load)
	}
	return digest
}

// TestFixtures rewrites testdata/runs under -update and otherwise checks the
// committed fixtures are what the generator makes, so goldens never drift
// from their inputs.
func TestFixtures(t *testing.T) {
	dir := filepath.Join("testdata", "runs")
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		writeFixtureSet(t, dir, 8, 2, 1)
		return
	}
	tmp := t.TempDir()
	writeFixtureSet(t, tmp, 8, 2, 1)
	for _, run := range []string{"workload", "bench", "sim", "vidur"} {
		ents, err := os.ReadDir(filepath.Join(tmp, run))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			want, _ := os.ReadFile(filepath.Join(tmp, run, e.Name()))
			got, err := os.ReadFile(filepath.Join(dir, run, e.Name()))
			if err != nil || string(got) != string(want) {
				t.Errorf("testdata/runs/%s/%s differs from the generator (err %v); run go test ./pkg/report -run TestFixtures -update", run, e.Name(), err)
			}
		}
	}
}

func fixtureDir(name string) string { return filepath.Join("testdata", "runs", name) }

func ensureFixtures(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(fixtureDir("bench")); err != nil {
		t.Fatal(fmt.Errorf("fixtures missing (%w): run go test ./pkg/report -run TestFixtures -update", err))
	}
}
