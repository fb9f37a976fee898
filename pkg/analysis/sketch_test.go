package analysis

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// samples of the shapes latencies take: continuous, heavy-tailed, a few
// repeated values (simulated token gaps), and zeros.
func testDists(r *rand.Rand, n int) map[string][]float64 {
	logn := make([]float64, n)
	disc := make([]float64, n)
	zeros := make([]float64, n)
	mixed := make([]float64, n)
	for i := range n {
		logn[i] = math.Exp(r.NormFloat64()*1.5 + 2)
		disc[i] = float64(10+r.IntN(5)) * 1.25
		if r.IntN(4) > 0 {
			zeros[i] = r.ExpFloat64() * 30
		}
		mixed[i] = r.NormFloat64() * 20
	}
	return map[string][]float64{"lognormal": logn, "discrete": disc, "with zeros": zeros, "signed": mixed}
}

func TestSketchQuantilesWithinAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for name, vals := range testDists(r, 20000) {
		t.Run(name, func(t *testing.T) {
			sk := NewSketch(SketchAccuracy)
			for _, v := range vals {
				sk.Add(v)
			}
			sorted := slices.Sorted(slices.Values(vals))
			for q := 0.0; q <= 1; q += 0.001 {
				want, got := Quantile(sorted, q), sk.Quantile(q)
				if math.Abs(got-want) > SketchAccuracy*math.Abs(want)+1e-9 {
					t.Fatalf("q=%.3f: sketch %g, exact %g: off by more than %.1f%%", q, got, want, 100*SketchAccuracy)
				}
			}
		})
	}
}

func TestSampleSwitchesToSketchPastItsLimit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := testDists(r, 5000)["lognormal"]
	s := NewSampleLimit(1000)
	for _, v := range vals {
		s.Add(v)
	}
	s.Finish()
	if s.Exact() || s.Method() != MethodSketch || s.Sorted() != nil {
		t.Fatal("sample of 5000 values with limit 1000 is still exact")
	}
	exact := Summarize(slices.Sorted(slices.Values(vals)))
	got := s.Summary()
	if got.Count != exact.Count || got.Min != exact.Min || got.Max != exact.Max || math.Abs(got.Mean-exact.Mean) > 1e-9*exact.Mean {
		t.Fatalf("count/min/max/mean must stay exact: got %+v, want %+v", got, exact)
	}
	if got.Quantiles != MethodSketch || got.RelAccuracy != SketchAccuracy {
		t.Fatalf("summary does not say it was sketched: %+v", got)
	}
	for _, st := range []string{StatP50, StatP90, StatP95, StatP99} {
		if w, g := exact.Get(st), got.Get(st); math.Abs(g-w) > SketchAccuracy*w {
			t.Errorf("%s: %g, exact %g", st, g, w)
		}
	}
	small := NewSampleLimit(1000)
	for _, v := range vals[:1000] {
		small.Add(v)
	}
	if !small.Exact() || small.Summary().Quantiles != MethodExact {
		t.Fatal("a sample at its limit must stay exact")
	}
}

// Sketched KS and W1 must contain the exact values within their stated
// error bounds, for every pair of shapes.
func TestSketchDistancesBoundTheExactOnes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	da, db := testDists(r, 8000), testDists(r, 6000)
	pairs := [][2]string{{"lognormal", "lognormal"}, {"discrete", "discrete"}, {"discrete", "lognormal"},
		{"with zeros", "lognormal"}, {"signed", "signed"}, {"signed", "with zeros"}}
	for _, p := range pairs {
		a, b := da[p[0]], db[p[1]]
		sa, sb := slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
		ks, w1 := KS(sa, sb), W1(sa, sb)
		for _, mode := range []string{"both sketched", "one sketched"} {
			x, y := NewSampleLimit(100), NewSampleLimit(100)
			if mode == "one sketched" {
				y = NewSampleLimit(len(b))
			}
			for _, v := range a {
				x.Add(v)
			}
			for _, v := range b {
				y.Add(v)
			}
			x.Finish()
			y.Finish()
			d := Distances(x, y)
			if math.Abs(d.KS-ks) > d.KSError+1e-12 {
				t.Errorf("%v %s: KS %g ± %g does not hold the exact %g", p, mode, d.KS, d.KSError, ks)
			}
			if math.Abs(d.W1-w1) > d.W1Error+1e-9 {
				t.Errorf("%v %s: W1 %g ± %g does not hold the exact %g", p, mode, d.W1, d.W1Error, w1)
			}
			if d.KSError > 0.25 || d.W1Error > 0.02*(math.Abs(x.Mean())+math.Abs(y.Mean()))+0.05*x.meanAbs() {
				t.Errorf("%v %s: bounds too loose to be useful: KS ± %g, W1 ± %g", p, mode, d.KSError, d.W1Error)
			}
		}
	}
	exactA, exactB := SampleOf(slices.Clone(da["lognormal"])), SampleOf(slices.Clone(db["lognormal"]))
	if d := Distances(exactA, exactB); d.KSError != 0 || d.W1Error != 0 {
		t.Fatalf("exact samples got error bounds %+v", d)
	}
}
