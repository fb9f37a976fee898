package engine

import (
	"fmt"
	"io"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// discardSink formats every row with the canonical writers, as a real run
// does, but throws the bytes away so benchmarks measure the simulator and
// not the disk.
type discardSink struct {
	req  *schema.RequestMetricsWriter
	tok  *schema.TokenMetricsWriter
	step *schema.StepMetricsWriter
}

func newDiscardSink() *discardSink {
	return &discardSink{schema.NewRequestMetricsWriter(io.Discard), schema.NewTokenMetricsWriter(io.Discard),
		schema.NewStepMetricsWriter(io.Discard)}
}

func (d *discardSink) Token(r *sched.Request, i, t, l int64) error {
	return d.tok.Write(schema.TokenMetric{RequestID: r.ID, TokenIndex: i, TokenTimeNs: t, TokenLatencyNs: l})
}

func (d *discardSink) Request(r *sched.Request) error {
	return d.req.Write(schema.RequestMetric{RequestID: r.ID, ArrivalTimeNs: r.Arrival, FirstTokenTimeNs: r.FirstTokenNs,
		TTFTNs: r.FirstTokenNs - r.Arrival, CompletionTimeNs: r.CompletionNs, NumPrefillTokens: r.Prompt,
		NumDecodeTokens: r.Decode, NumDecodeTokensActual: r.Decode, Status: schema.StatusOK})
}

func (d *discardSink) Step(step, start, end int64, s sched.Shape) error {
	return d.step.Write(schema.StepMetric{Step: step, StartNs: start, EndNs: end, NumPrefillTokens: s.PrefillTokens,
		NumDecodeTokens: s.DecodeTokens, NumRequests: s.Requests, NumContextTokens: s.ContextTokens})
}

// benchConfig is a realistic single-H100 setting: enough blocks that memory
// is not the bottleneck, token budgets of the real engine.
func benchConfig() sched.Config {
	return sched.Config{BlockSize: 32, NumBlocks: 16384, MaxBatchTokens: 2048, BatchSizeCap: 128,
		ChunkSize: 512, Watermark: 0.01, SafetyMargin: 0.2, MaxTokens: 4096}
}

// The benchmark workload: prompts up to 512 tokens, up to 128 output tokens,
// Poisson arrivals at 20 req/s (below saturation for the test model, so
// queues stay bounded and cost is per request).
func benchWorkload(n int) []schema.Request { return synth(n, 20, 512, 128, 42) }

func runBench(b *testing.B, policy string, reqs []schema.Request) {
	b.Helper()
	b.ReportAllocs()
	var steps, tokens int64
	for i := 0; i < b.N; i++ {
		s, err := sched.New(policy, benchConfig())
		if err != nil {
			b.Fatal(err)
		}
		res, err := Run(reqs, s, testModel(), newDiscardSink(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		steps, tokens = res.Steps, res.TokensOut
	}
	b.ReportMetric(float64(steps), "steps/op")
	b.ReportMetric(float64(tokens), "tokens/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(reqs)), "ns/request")
}

// BenchmarkRun10k is the 10,000-request trace under each policy.
func BenchmarkRun10k(b *testing.B) {
	reqs := benchWorkload(10_000)
	for _, p := range []string{"vllm", "hf-cb", "sarathi", "orca"} {
		b.Run(p, func(b *testing.B) { runBench(b, p, reqs) })
	}
}

// BenchmarkScale shows cost linear in the number of requests; the 1M case
// is the ≤ 60 s / ≤ 2 GB target (run with -benchtime=1x under
// /usr/bin/time -v for peak RSS).
func BenchmarkScale(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000, 1_000_000} {
		reqs := benchWorkload(n)
		for _, p := range []string{"vllm", "hf-cb"} {
			b.Run(fmt.Sprintf("%s/n=%d", p, n), func(b *testing.B) { runBench(b, p, reqs) })
		}
	}
}
