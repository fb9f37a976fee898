package analysis

import (
	"math"
	"slices"
)

// ExactLimit is how many values of one metric of one run are kept exactly.
// Up to it, quantiles, KS and W1 are exact, as numpy computes them; beyond
// it (the token gaps of a run of a million requests number over a hundred
// million, its engine steps several million) the values go into a Sketch, so
// a comparison reads runs of any size in bounded memory. 4Mi values are
// 32 MiB; a compare of two runs holds a few such samples at once.
const ExactLimit = 1 << 22

// Quantile methods a Summary records.
const (
	MethodExact  = "exact"
	MethodSketch = "sketch"
)

// Sample accumulates one metric's values: kept exactly up to its limit,
// in a Sketch beyond. Count, mean (compensated sum), min and max are always
// exact.
type Sample struct {
	limit    int
	vals     []float64
	sk       *Sketch
	n        int
	sum, c   float64 // Kahan-Babuska sum and its compensation
	absSum   float64
	min, max float64
	sorted   bool
}

// NewSample returns an empty sample kept exactly up to ExactLimit values.
func NewSample() *Sample { return NewSampleLimit(ExactLimit) }

// NewSampleLimit returns an empty sample kept exactly up to limit values.
func NewSampleLimit(limit int) *Sample {
	return &Sample{limit: limit, min: math.Inf(1), max: math.Inf(-1)}
}

// NewSampleFor returns an empty sample for about n values: sized for them
// when they fit the exact limit, a sketch from the start when they do not
// (so a huge metric never holds its first ExactLimit values at all). n <= 0
// means unknown.
func NewSampleFor(n int) *Sample {
	s := NewSample()
	switch {
	case n > s.limit:
		s.sk = NewSketch(SketchAccuracy)
	case n > 0:
		s.Reserve(n)
	}
	return s
}

// SampleOf is a finished exact sample of vals (which it takes over).
func SampleOf(vals []float64) *Sample {
	s := NewSampleLimit(max(len(vals), 1))
	for _, v := range vals {
		s.stat(v)
	}
	s.vals = vals
	s.Finish()
	return s
}

// Reserve sizes the exact store for n values (at most the limit).
func (s *Sample) Reserve(n int) {
	if s.sk == nil && n > cap(s.vals) {
		s.vals = slices.Grow(s.vals, min(n, s.limit)-len(s.vals))
	}
}

func (s *Sample) stat(v float64) {
	s.n++
	t := s.sum + v
	if math.Abs(s.sum) >= math.Abs(v) {
		s.c += (s.sum - t) + v
	} else {
		s.c += (v - t) + s.sum
	}
	s.sum = t
	s.absSum += math.Abs(v)
	s.min, s.max = min(s.min, v), max(s.max, v)
}

// Add adds one value; NaN is ignored.
func (s *Sample) Add(v float64) {
	if math.IsNaN(v) {
		return
	}
	s.stat(v)
	s.sorted = false
	if s.sk != nil {
		s.sk.Add(v)
		return
	}
	if len(s.vals) < s.limit {
		s.vals = append(s.vals, v)
		return
	}
	s.sk = NewSketch(SketchAccuracy)
	for _, x := range s.vals {
		s.sk.Add(x)
	}
	s.sk.Add(v)
	s.vals = nil
}

// AddRun adds v k times: the same sample as k calls of Add, with the
// sketch counting them at once (a step's tokens share one gap).
func (s *Sample) AddRun(v float64, k int) {
	if s.sk == nil || math.IsNaN(v) {
		for range k {
			s.Add(v)
		}
		return
	}
	for range k {
		s.stat(v)
	}
	s.sorted = false
	s.sk.AddN(v, int64(k))
}

// Finish sorts an exact sample; call it after the last Add.
func (s *Sample) Finish() {
	if s.sk == nil && !s.sorted {
		slices.Sort(s.vals)
	}
	s.sorted = true
}

// Len is the number of values.
func (s *Sample) Len() int { return s.n }

// Exact reports whether every value is kept.
func (s *Sample) Exact() bool { return s.sk == nil }

// Method is MethodExact or MethodSketch.
func (s *Sample) Method() string {
	if s.sk == nil {
		return MethodExact
	}
	return MethodSketch
}

// Sorted is the ascending exact sample (nil once sketched).
func (s *Sample) Sorted() []float64 {
	if s.sk != nil {
		return nil
	}
	s.Finish()
	return s.vals
}

// Mean is the exact mean (NaN when empty).
func (s *Sample) Mean() float64 {
	if s.n == 0 {
		return math.NaN()
	}
	return (s.sum + s.c) / float64(s.n)
}

// meanAbs is the mean of |x|, which bounds W1's sketch error.
func (s *Sample) meanAbs() float64 {
	if s.n == 0 {
		return math.NaN()
	}
	return s.absSum / float64(s.n)
}

// Quantile is the type-7 q-quantile: exact, or within the sketch's relative
// accuracy.
func (s *Sample) Quantile(q float64) float64 {
	if s.sk == nil {
		return Quantile(s.Sorted(), q)
	}
	return s.sk.Quantile(q)
}

// Summary computes the sample's statistics.
func (s *Sample) Summary() Summary {
	if s.n == 0 {
		return Summarize(nil)
	}
	if s.sk == nil {
		return Summarize(s.Sorted())
	}
	bs := s.sk.buckets()
	q := func(p float64) float64 {
		// Clamped to the exact extremes, which a bucket's representative
		// may overshoot by up to the accuracy.
		return min(max(s.sk.quantileOf(bs, p), s.min), s.max)
	}
	return Summary{Count: s.n, Mean: s.Mean(), P50: q(0.50), P90: q(0.90), P95: q(0.95), P99: q(0.99),
		Min: s.min, Max: s.max, Quantiles: MethodSketch, RelAccuracy: s.sk.Alpha()}
}

// sketchOf is the sample as a sketch: its own, or one built from its exact
// values (to compare it with a sketched sample bucket by bucket).
func (s *Sample) sketchOf() *Sketch {
	if s.sk != nil {
		return s.sk
	}
	sk := NewSketch(SketchAccuracy)
	for _, v := range s.vals {
		sk.Add(v)
	}
	return sk
}

// CDFPoints is an ascending sample for drawing the CDF: the exact values, or
// the sketch's quantiles at n evenly spaced ranks (with the exact extremes).
func (s *Sample) CDFPoints(n int) []float64 {
	if s.sk == nil {
		return s.Sorted()
	}
	if s.n == 0 {
		return nil
	}
	bs := s.sk.buckets()
	n = max(n, 2)
	out := make([]float64, n)
	for i := range out {
		out[i] = min(max(s.sk.quantileOf(bs, float64(i)/float64(n-1)), s.min), s.max)
	}
	out[0], out[n-1] = s.min, s.max
	return out
}

// RerunDistanceSamples is RerunDistance for samples of any size (sketched
// ones compared on their buckets).
func RerunDistanceSamples(ref *Sample, reruns []*Sample) Distance {
	if len(reruns) == 0 {
		return Distance{KS: math.NaN(), W1: math.NaN()}
	}
	var d Distance
	for _, r := range reruns {
		x := Distances(ref, r)
		d.KS += x.KS
		d.W1 += x.W1
	}
	n := float64(len(reruns))
	return Distance{KS: d.KS / n, W1: d.W1 / n}
}
