package analysis

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func sample(r *rand.Rand, n int, scale float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.Round(r.ExpFloat64()*scale*10) / 10 // rounding makes ties
	}
	slices.Sort(s)
	return s
}

func TestQuantileType7(t *testing.T) {
	// Expected values are numpy.percentile's defaults (type 7).
	x := []float64{1, 2, 3, 4}
	cases := []struct{ q, want float64 }{
		{0, 1}, {0.5, 2.5}, {0.9, 3.7}, {0.99, 3.97}, {1, 4}, {0.25, 1.75},
	}
	for _, c := range cases {
		if got := Quantile(x, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Quantile(%v, %v) = %v, want %v", x, c.q, got, c.want)
		}
	}
	if got := Quantile([]float64{7}, 0.99); got != 7 {
		t.Errorf("single value: got %v", got)
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("empty sample must give NaN")
	}
}

func TestQuantileMonotone(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 50; trial++ {
		s := sample(r, 1+r.IntN(300), 20)
		prev := math.Inf(-1)
		for q := 0.0; q <= 1.0; q += 0.001 {
			v := Quantile(s, q)
			if v < prev {
				t.Fatalf("trial %d: quantile decreased at q=%v: %v < %v", trial, q, v, prev)
			}
			prev = v
		}
		if Quantile(s, 0) != s[0] || Quantile(s, 1) != s[len(s)-1] {
			t.Fatalf("quantiles 0 and 1 must be min and max")
		}
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{1, 2, 3, 4, 10})
	if s.Count != 5 || s.Mean != 4 || s.Min != 1 || s.Max != 10 || s.P50 != 3 {
		t.Errorf("summary = %+v", s)
	}
	if !(s.P50 <= s.P90 && s.P90 <= s.P95 && s.P95 <= s.P99 && s.P99 <= s.Max) {
		t.Errorf("percentiles out of order: %+v", s)
	}
	e := Summarize(nil)
	if e.Count != 0 || !math.IsNaN(e.P99) {
		t.Errorf("empty summary = %+v", e)
	}
}

func TestRelError(t *testing.T) {
	if got := RelError(100, 77); math.Abs(got+0.23) > 1e-12 {
		t.Errorf("RelError = %v", got)
	}
	if !math.IsNaN(RelError(0, 1)) {
		t.Error("zero reference must give NaN")
	}
}
