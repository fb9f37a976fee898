package workload

import (
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// A million-request workload is what the embedded simulator's stress runs use.
func BenchmarkGenerateAndWrite1M(b *testing.B) {
	p := Params{Model: "m", Seed: 1, NumRequests: 1_000_000,
		Arrival: Arrival{Process: Gamma, Rate: ptr(100.0), Burstiness: ptr(0.5)},
		Prefill: Lengths{Dist: LogNormal, Mean: ptr(512.0), Std: ptr(256.0), Max: ptr[int64](4096)},
		Decode:  Lengths{Dist: Zipf, S: ptr(1.1), Min: ptr[int64](1), Max: ptr[int64](2048)}}
	for b.Loop() {
		w, err := Generate(p, ".")
		if err != nil {
			b.Fatal(err)
		}
		if err := schema.WriteWorkload(b.TempDir(), w); err != nil {
			b.Fatal(err)
		}
	}
}
