package predict

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

func h100Profile(tb testing.TB, interp string) *VidurProfile {
	tb.Helper()
	prof, err := profile.Read(filepath.Join("..", "..", "..", "testdata", "profile", "h100"))
	if err != nil {
		tb.Fatal(err)
	}
	o := NewVidurOptions()
	o.Interpolation = interp
	p, err := NewVidurProfile(prof, VidurModel{NumLayers: 28, NumQHeads: 16, NumKVHeads: 8, Hidden: 1024, PostAttnNorm: true}, o)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// randomBatches are engine-like iterations: mostly decodes with growing
// contexts, some prefill chunks, now and then a huge prefill past the memo.
func randomBatches(n int) []sched.Batch {
	r := rand.New(rand.NewPCG(7, 8))
	out := make([]sched.Batch, n)
	for i := range out {
		for j := 0; j < 1+r.IntN(128); j++ {
			req := sched.NewRequest(j, int64(j), 0, 512, 128)
			e := sched.Entry{Req: req, Tokens: 1, ProcessedBefore: int64(r.IntN(3000))}
			if r.IntN(20) == 0 {
				e.Prefill, e.Tokens = true, int64(1+r.IntN(2048))
				if r.IntN(50) == 0 {
					e.Tokens = memoLimit + int64(r.IntN(1000))
				}
			}
			out[i].Entries = append(out[i].Entries, e)
		}
	}
	return out
}

// The memo changes no step time by a single bit, for every interpolation
// it applies to, whatever order the token counts come in.
func TestVidurProfileMemoExact(t *testing.T) {
	for _, interp := range []string{InterpLinear, InterpNearest, InterpForest} {
		p := h100Profile(t, interp)
		plain := *p
		plain.memo = nil
		for i, b := range randomBatches(3000) {
			got, want := p.StepMs(&b), plain.StepMs(&b)
			if math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("%s batch %d: memoized %v, computed %v", interp, i, got, want)
			}
		}
	}
}

// BenchmarkVidurProfileStep times one step prediction with the H100
// profile on engine-like batches, with the memo and without.
//
//	go test ./pkg/sim/predict -run XXX -bench VidurProfileStep
func BenchmarkVidurProfileStep(b *testing.B) {
	bs := randomBatches(4096)
	for _, memo := range []bool{true, false} {
		name := "memo"
		if !memo {
			name = "computed"
		}
		b.Run(name, func(b *testing.B) {
			p := h100Profile(b, InterpLinear)
			if !memo {
				p.memo = nil
			}
			for i := 0; i < b.N; i++ {
				p.StepNs(&bs[i%len(bs)])
			}
		})
	}
}
