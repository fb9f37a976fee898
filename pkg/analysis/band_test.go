package analysis

import (
	"math"
	"testing"
)

func TestBandOf(t *testing.T) {
	runs := []Summary{
		Summarize([]float64{10, 20, 30}),
		Summarize([]float64{12, 22, 32, 42}),
		Summarize([]float64{8, 18}),
	}
	b := BandOf(runs, StatP50)
	if float64(b.Lo) != 13 || float64(b.Hi) != 27 || b.Runs != 3 || b.MinCount != 2 {
		t.Fatalf("band %+v, want lo 13 (8,18) hi 27 (12..42), 3 runs, min count 2", b)
	}
	lo, hi := b.Rel(20)
	if math.Abs(lo+0.35) > 1e-12 || math.Abs(hi-0.35) > 1e-12 {
		t.Errorf("relative band %v..%v, want -35%%..+35%%", lo, hi)
	}
	if !b.Within(26, 20) || b.Within(27.5, 20) || b.Within(12, 20) {
		t.Error("Within disagrees with the band 13..27")
	}
}

func TestBandToleranceFloor(t *testing.T) {
	// Two reruns that agree to 1% still tolerate ±3% of the reference.
	b := BandOf([]Summary{Summarize([]float64{100}), Summarize([]float64{101})}, StatP50)
	for _, tc := range []struct {
		v    float64
		want bool
	}{{97, true}, {96.9, false}, {103, true}, {103.1, false}, {100.5, true}} {
		if got := b.Within(tc.v, 100); got != tc.want {
			t.Errorf("Within(%v) = %v, want %v (band 100..101 widened to 97..103)", tc.v, got, tc.want)
		}
	}
	// A single run has no band: nothing is within it.
	one := BandOf([]Summary{Summarize([]float64{100})}, StatP50)
	if one.Defined() || one.Within(100, 100) {
		t.Errorf("a one-run band %+v must be undefined", one)
	}
}

func TestRerunDistanceAndRatio(t *testing.T) {
	ref := []float64{1, 2, 3, 4}
	shift := func(d float64) []float64 { return []float64{1 + d, 2 + d, 3 + d, 4 + d} }
	rd := RerunDistance(ref, [][]float64{shift(1), shift(3)})
	if math.Abs(rd.W1-2) > 1e-12 {
		t.Errorf("mean rerun W1 %v, want 2 (shifts 1 and 3)", rd.W1)
	}
	r := Distance{KS: rd.KS, W1: 5}.Ratio(rd)
	if math.Abs(r.W1-2.5) > 1e-12 || math.Abs(r.KS-1) > 1e-12 {
		t.Errorf("ratio %+v, want W1 2.5 and KS 1", r)
	}
	if nan := RerunDistance(ref, nil); !math.IsNaN(nan.W1) || !math.IsNaN(Distance{W1: 1}.Ratio(nan).W1) {
		t.Error("no reruns must give NaN distances and ratios")
	}
}
