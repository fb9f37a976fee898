package report

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// BenchmarkCompare is the full compare of a real run against two candidates
// at 10,000 requests × 256 output tokens (2.56M token rows per run): reading
// the CSVs, every statistic, the figures, summary.md, report.html and
// compare.json.
func BenchmarkCompare(b *testing.B) {
	dir := b.TempDir()
	w := &schema.Workload{Meta: schema.WorkloadMeta{Model: "Qwen/Qwen3-0.6B", CreatedAt: "2026-01-01T00:00:00Z"}}
	var t int64
	for i := 0; i < 10000; i++ {
		gap := int64(5e6 + (i*7919)%10e6)
		t += gap
		w.Requests = append(w.Requests, schema.Request{ID: int64(i), PromptID: int64(i), NumPrefillTokens: int64(64 + i%512),
			NumDecodeTokens: 256, InterArrivalNs: gap, ArrivalTimeNs: t})
	}
	wdir := filepath.Join(dir, "workload")
	if err := schema.WriteWorkload(wdir, w); err != nil {
		b.Fatal(err)
	}
	digest, err := schema.WorkloadDigest(wdir)
	if err != nil {
		b.Fatal(err)
	}
	in := CompareInput{WorkloadDir: wdir, Instance: "compare", Matrix: map[string]any{"rate": 100}}
	for _, r := range []struct {
		name string
		e    engine
	}{{"bench", benchEngine}, {"sim", simEngine}, {"vidur", vidurEngine}} {
		writeFixtureRun(b, filepath.Join(dir, r.name), w, digest, r.e, 3)
		ri := RunInput{Name: r.name, Dir: filepath.Join(dir, r.name)}
		if r.name == "bench" {
			in.Reference = ri
		} else {
			in.Candidates = append(in.Candidates, ri)
		}
	}
	out := filepath.Join(dir, "out")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Compare(context.Background(), in, out, nil); err != nil {
			b.Fatal(err)
		}
	}
}
