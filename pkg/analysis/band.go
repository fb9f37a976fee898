package analysis

import (
	"math"
)

// A rerun band is how far the real engine moves when it runs the same
// workload again: for each statistic, the smallest and largest value over
// the reference run and its reruns (separate engine processes). gsim uses
// the min-max over whole reruns, not a bootstrap interval of one run's
// sample, because the variation that matters is between engine sessions
// (each process draws its own CUDA-graph capture costs, clocks and memory
// layout), which resampling one run's requests cannot see.

// Target rules for calling a simulator indistinguishable from a rerun.
const (
	// TolFloor widens every band to at least this fraction of the
	// reference value, so two identical-looking reruns do not make a 0%
	// band that no model could meet.
	TolFloor = 0.03
	// MaxDistanceRatio bounds a candidate's W1 to the reference as a
	// multiple of a rerun's W1 to it.
	MaxDistanceRatio = 1.25
	// MinTailRequests is the sample size below which a P99 band is too
	// thin to hold a candidate to (P99 of 200 requests is the 2nd largest).
	MinTailRequests = 1000
)

// Band is one statistic's spread over repeated real runs.
type Band struct {
	Lo Num `json:"lo"`
	Hi Num `json:"hi"`
	// Runs is how many runs the band spans (the reference included);
	// MinCount the smallest sample among them.
	Runs     int `json:"runs"`
	MinCount int `json:"min_count"`
}

// Defined reports whether the band comes from at least two runs.
func (b Band) Defined() bool {
	return b.Runs >= 2 && !math.IsNaN(float64(b.Lo)) && !math.IsNaN(float64(b.Hi))
}

// Rel is the band relative to the reference value: (lo-ref)/ref and
// (hi-ref)/ref.
func (b Band) Rel(ref float64) (lo, hi float64) {
	return RelError(ref, float64(b.Lo)), RelError(ref, float64(b.Hi))
}

// Tolerance is the band widened to at least ±TolFloor of the reference.
func (b Band) Tolerance(ref float64) (lo, hi float64) {
	lo, hi = float64(b.Lo), float64(b.Hi)
	if math.IsNaN(lo) || math.IsNaN(hi) {
		lo, hi = ref, ref
	}
	return math.Min(lo, ref*(1-TolFloor)), math.Max(hi, ref*(1+TolFloor))
}

// Within reports whether v lies inside the tolerance band around ref. It is
// false for an undefined band or value.
func (b Band) Within(v, ref float64) bool {
	if !b.Defined() || math.IsNaN(v) || math.IsNaN(ref) {
		return false
	}
	lo, hi := b.Tolerance(ref)
	return v >= lo && v <= hi
}

// BandOf is the band of stat over runs' summaries (the reference first).
func BandOf(sums []Summary, stat string) Band {
	b := Band{Lo: Num(math.NaN()), Hi: Num(math.NaN()), Runs: len(sums)}
	for i, s := range sums {
		v := s.Get(stat)
		if i == 0 || s.Count < b.MinCount {
			b.MinCount = s.Count
		}
		if math.IsNaN(v) {
			continue
		}
		if math.IsNaN(float64(b.Lo)) || v < float64(b.Lo) {
			b.Lo = Num(v)
		}
		if math.IsNaN(float64(b.Hi)) || v > float64(b.Hi) {
			b.Hi = Num(v)
		}
	}
	return b
}

// RerunDistance is the mean KS and W1 of each rerun's sample to the
// reference's: how far apart two runs of the real engine are. NaN without
// reruns.
func RerunDistance(ref []float64, reruns [][]float64) Distance {
	if len(reruns) == 0 {
		return Distance{KS: math.NaN(), W1: math.NaN()}
	}
	var d Distance
	for _, r := range reruns {
		d.KS += KS(ref, r)
		d.W1 += W1(ref, r)
	}
	n := float64(len(reruns))
	return Distance{KS: d.KS / n, W1: d.W1 / n}
}

// Ratio is d over the rerun distance, per component (NaN where the rerun's
// distance is 0 or undefined).
func (d Distance) Ratio(rerun Distance) Distance {
	div := func(a, b float64) float64 {
		if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
			return math.NaN()
		}
		return a / b
	}
	return Distance{KS: div(d.KS, rerun.KS), W1: div(d.W1, rerun.W1)}
}
