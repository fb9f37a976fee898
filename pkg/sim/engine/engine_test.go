package engine

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

var update = flag.Bool("update", false, "rewrite golden files")

// synth makes n requests with Poisson arrivals at rate per second and
// prompt/decode lengths drawn uniformly.
func synth(n int, rate float64, maxPrompt, maxDecode int64, seed uint64) []schema.Request {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]schema.Request, n)
	var t int64
	for i := range out {
		gap := int64(rng.ExpFloat64() / rate * 1e9)
		t += gap
		out[i] = schema.Request{ID: int64(i), PromptID: int64(i), NumPrefillTokens: 1 + rng.Int64N(maxPrompt),
			NumDecodeTokens: 1 + rng.Int64N(maxDecode), InterArrivalNs: gap, ArrivalTimeNs: t}
	}
	return out
}

// testModel is a step model with the shape of the real engine's costs: a
// fixed CPU cost per step, per request, and per token.
func testModel() *predict.StepModel {
	return &predict.StepModel{Features: []string{predict.FeatIntercept, predict.FeatPrefillTokens,
		predict.FeatDecodeTokens, predict.FeatContextTokens, predict.FeatRequests},
		Coef: []float64{20e6, 15e3, 30e3, 50, 200e3}, InterStepGapNs: 1e6, MinStepNs: 1}
}

type memSink struct {
	tokens   map[int64][]int64 // request -> token times
	lastTok  int64
	reqs     []sched.Request
	steps    []schema.StepMetric
	problems []string
}

func newMemSink() *memSink { return &memSink{tokens: map[int64][]int64{}} }

func (m *memSink) Token(r *sched.Request, idx, t, lat int64) error {
	if t < m.lastTok {
		m.problems = append(m.problems, fmt.Sprintf("token time went back: %d after %d", t, m.lastTok))
	}
	m.lastTok = t
	ts := m.tokens[r.ID]
	if int64(len(ts)) != idx {
		m.problems = append(m.problems, fmt.Sprintf("request %d: token %d after %d tokens", r.ID, idx, len(ts)))
	}
	if idx > 0 && lat != t-ts[len(ts)-1] {
		m.problems = append(m.problems, fmt.Sprintf("request %d: latency %d", r.ID, lat))
	}
	m.tokens[r.ID] = append(ts, t)
	return nil
}

func (m *memSink) Request(r *sched.Request) error { m.reqs = append(m.reqs, *r); return nil }

func (m *memSink) Step(step, start, end int64, s sched.Shape) error {
	if n := len(m.steps); n > 0 && start < m.steps[n-1].EndNs {
		m.problems = append(m.problems, fmt.Sprintf("step %d starts at %d before step %d ended at %d", step, start, n-1, m.steps[n-1].EndNs))
	}
	m.steps = append(m.steps, schema.StepMetric{Step: step, StartNs: start, EndNs: end, NumPrefillTokens: s.PrefillTokens,
		NumDecodeTokens: s.DecodeTokens, NumRequests: s.Requests})
	return nil
}

type policyCase struct {
	name string
	cfg  sched.Config
	// fifo: first scheduling follows arrival order.
	fifo bool
}

func policyCases(numBlocks int64) []policyCase {
	base := sched.Config{BlockSize: 16, NumBlocks: numBlocks, MaxBatchTokens: 512, BatchSizeCap: 32,
		ChunkSize: 256, Watermark: 0.01, SafetyMargin: 0.2, MaxTokens: 1024}
	vllm := base
	vllm.MaxBatchTokens = 2048 // a prompt longer than this never runs under vllm
	return []policyCase{
		{"hf-cb", base, true},
		{"hf-cb-prefill-first", base, true},
		{"vllm", vllm, true},
		{"sarathi", base, true},
		{"orca", base, true},
	}
}

// checkBatch asserts the limits each policy promises.
func checkBatch(t *testing.T, name string, c sched.Config, s sched.Scheduler, b *sched.Batch) {
	t.Helper()
	var total, maxTok int64
	prefill := false
	for _, e := range b.Entries {
		total += e.Tokens
		maxTok = max(maxTok, e.Tokens)
		prefill = prefill || e.Prefill
		if e.Tokens <= 0 {
			t.Fatalf("%s: request %d scheduled with %d tokens", name, e.Req.ID, e.Tokens)
		}
		if name != "orca" && e.Req.Blocks*c.BlockSize < e.CacheBefore+e.Tokens {
			t.Fatalf("%s: request %d holds %d blocks for %d tokens", name, e.Req.ID, e.Req.Blocks, e.CacheBefore+e.Tokens)
		}
	}
	if s.KV().Used() > c.NumBlocks {
		t.Fatalf("%s: %d blocks used of %d", name, s.KV().Used(), c.NumBlocks)
	}
	switch name {
	case "hf-cb", "hf-cb-prefill-first":
		if total > c.MaxBatchTokens {
			t.Fatalf("%s: %d tokens over budget %d", name, total, c.MaxBatchTokens)
		}
	case "vllm":
		if prefill && int64(len(b.Entries))*maxTok > c.MaxBatchTokens {
			t.Fatalf("vllm: padded prefill batch %d×%d over %d", len(b.Entries), maxTok, c.MaxBatchTokens)
		}
		if int64(len(b.Entries)) > c.BatchSizeCap {
			t.Fatalf("vllm: batch of %d over cap %d", len(b.Entries), c.BatchSizeCap)
		}
	case "sarathi":
		if prefill && total > c.ChunkSize {
			t.Fatalf("sarathi: %d tokens over chunk %d", total, c.ChunkSize)
		}
		if int64(len(b.Entries)) > c.BatchSizeCap {
			t.Fatalf("sarathi: batch of %d over cap %d", len(b.Entries), c.BatchSizeCap)
		}
	case "orca":
		if int64(len(b.Entries)) > c.BatchSizeCap {
			t.Fatalf("orca: batch of %d over cap %d", len(b.Entries), c.BatchSizeCap)
		}
	}
}

func runCase(t *testing.T, pc policyCase, reqs []schema.Request) (*memSink, Result, []int64) {
	t.Helper()
	s, err := sched.New(pc.name, pc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := newMemSink()
	var firstOrder []int64
	seen := map[int64]bool{}
	res, err := Run(reqs, s, testModel(), sink, Options{OnBatch: func(now int64, b *sched.Batch) {
		checkBatch(t, pc.name, pc.cfg, s, b)
		for _, e := range b.Entries {
			if !seen[e.Req.ID] {
				seen[e.Req.ID] = true
				firstOrder = append(firstOrder, e.Req.ID)
			}
		}
	}})
	if err != nil {
		t.Fatalf("%s: %v", pc.name, err)
	}
	return sink, res, firstOrder
}

func TestInvariants(t *testing.T) {
	for _, blocks := range []int64{4096, 300} {
		reqs := synth(400, 8, 600, 200, 7)
		for _, pc := range policyCases(blocks) {
			t.Run(fmt.Sprintf("%s/blocks=%d", pc.name, blocks), func(t *testing.T) {
				sink, res, first := runCase(t, pc, reqs)
				for _, p := range sink.problems {
					t.Error(p)
				}
				if len(sink.reqs) != len(reqs) {
					t.Fatalf("%d of %d requests completed", len(sink.reqs), len(reqs))
				}
				for _, w := range reqs {
					if got := int64(len(sink.tokens[w.ID])); got != w.NumDecodeTokens {
						t.Fatalf("request %d: %d tokens, want %d", w.ID, got, w.NumDecodeTokens)
					}
				}
				for _, r := range sink.reqs {
					if r.FirstTokenNs < r.Arrival || r.CompletionNs < r.FirstTokenNs {
						t.Fatalf("request %d: arrival %d first %d done %d", r.ID, r.Arrival, r.FirstTokenNs, r.CompletionNs)
					}
				}
				if pc.fifo {
					for i := 1; i < len(first); i++ {
						if first[i] < first[i-1] {
							t.Fatalf("first scheduling out of arrival order: %d after %d", first[i], first[i-1])
						}
					}
				}
				if res.PeakBlocks > pc.cfg.NumBlocks {
					t.Fatalf("peak %d blocks of %d", res.PeakBlocks, pc.cfg.NumBlocks)
				}
				t.Logf("steps %d end %.1fs peak blocks %d restarts %d", res.Steps, float64(res.EndNs)/1e9, res.PeakBlocks, res.Restarts)
			})
		}
	}
}

// Tight memory must make vllm preempt, and the run must still finish with
// every token.
func TestVLLMPreempts(t *testing.T) {
	reqs := synth(300, 50, 200, 400, 3)
	pc := policyCases(120)[2]
	sink, res, _ := runCase(t, pc, reqs)
	if res.Restarts == 0 {
		t.Fatal("no preemption with 120 blocks; the test does not exercise recompute")
	}
	for _, w := range reqs {
		if got := int64(len(sink.tokens[w.ID])); got != w.NumDecodeTokens {
			t.Fatalf("request %d: %d tokens, want %d", w.ID, got, w.NumDecodeTokens)
		}
	}
}

func TestStuckIsAnError(t *testing.T) {
	reqs := []schema.Request{{ID: 0, NumPrefillTokens: 5000, NumDecodeTokens: 2, ArrivalTimeNs: 0}}
	s, _ := sched.New("vllm", sched.Config{BlockSize: 16, NumBlocks: 100, MaxBatchTokens: 8192, BatchSizeCap: 8})
	_, err := Run(reqs, s, testModel(), newMemSink(), Options{})
	if !errors.Is(err, ErrStuck) {
		t.Fatalf("err = %v, want ErrStuck", err)
	}
}

// Deterministic output per policy on a small workload, compared to goldens.
func TestGolden(t *testing.T) {
	reqs := synth(24, 4, 300, 40, 11)
	for _, pc := range policyCases(256) {
		t.Run(pc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := sched.New(pc.name, pc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			sink, err := NewFolderSink(dir, true, len(reqs))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Run(reqs, s, testModel(), sink, Options{}); err != nil {
				t.Fatal(err)
			}
			if err := sink.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{schema.RequestMetricsFile, schema.StepMetricsFile} {
				got, err := csvForm(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", pc.name+"."+f)
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s differs from %s; inspect and rerun with -update if intended", f, golden)
				}
			}
			meta := &schema.RunMeta{RunType: schema.RunSim, Model: "test", WorkloadDigest: strings.Repeat("ab", 32)}
			if err := schema.WriteRunMeta(filepath.Join(dir, schema.RunMetaFile), meta); err != nil {
				t.Fatal(err)
			}
			if _, err := schema.ReadRun(dir); err != nil {
				t.Fatalf("output is not a valid run folder: %v", err)
			}
		})
	}
}

// csvForm returns a table's content as canonical CSV whatever form it is
// stored in, so the goldens pin the rows, not the encoding.
func csvForm(path string) ([]byte, error) {
	if filepath.Base(path) != schema.StepMetricsFile {
		return os.ReadFile(path)
	}
	steps, err := schema.ReadStepMetrics(path)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w := schema.NewStepMetricsWriter(&b)
	for _, s := range steps {
		if err := w.Write(s); err != nil {
			return nil, err
		}
	}
	err = w.Flush()
	return b.Bytes(), err
}

// rowSink records every token as the engine hands it over one call at a
// time (it is no TokenBatchSink).
type rowSink struct{ toks []schema.TokenMetric }

func (s *rowSink) Token(r *sched.Request, idx, t, lat int64) error {
	s.toks = append(s.toks, schema.TokenMetric{RequestID: r.ID, TokenIndex: idx, TokenTimeNs: t, TokenLatencyNs: lat})
	return nil
}
func (s *rowSink) Request(*sched.Request) error                { return nil }
func (s *rowSink) Step(int64, int64, int64, sched.Shape) error { return nil }

// A sink that takes a step's tokens at once (the folder sink) gets the same
// token rows, in the same order, as one that takes them one by one.
func TestTokenBatchesMatchTokenCalls(t *testing.T) {
	reqs := synth(24, 4, 300, 40, 11)
	for _, pc := range policyCases(256) {
		t.Run(pc.name, func(t *testing.T) {
			run := func(sink Sink) {
				s, err := sched.New(pc.name, pc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Run(reqs, s, testModel(), sink, Options{}); err != nil {
					t.Fatal(err)
				}
			}
			var one rowSink
			run(&one)
			dir := t.TempDir()
			folder, err := NewFolderSink(dir, true, len(reqs))
			if err != nil {
				t.Fatal(err)
			}
			run(folder)
			if err := folder.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := schema.ReadTokenMetrics(filepath.Join(dir, schema.TokenMetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(one.toks) == 0 || !slices.Equal(got, one.toks) {
				t.Fatalf("the folder sink wrote %d token rows, the engine emitted %d one by one (or they differ)", len(got), len(one.toks))
			}
		})
	}
}
