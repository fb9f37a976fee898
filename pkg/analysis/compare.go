package analysis

// Distance is how far a candidate's distribution is from the reference's.
type Distance struct {
	// KS is sup |F_ref - F_cand|, in [0, 1].
	KS float64 `json:"ks"`
	// W1 is ∫ |F_ref - F_cand| dx in the metric's unit (ms for latencies).
	W1 float64 `json:"w1"`
	// KSError and W1Error bound how far KS and W1 may be from the exact
	// values when either sample was sketched (0: exact).
	KSError float64 `json:"ks_error,omitempty"`
	W1Error float64 `json:"w1_error,omitempty"`
}

// MetricComparison compares one metric of a candidate with the reference.
type MetricComparison struct {
	Metric string `json:"metric"`
	Ref    Summary
	Cand   Summary
	// RelError maps each stat of StatNames to (cand-ref)/ref.
	RelError map[string]float64
	Distance Distance
}

// CompareSamples compares two samples of one metric: exactly when both are
// exact, through sketches (with error bounds) otherwise.
func CompareSamples(metric string, ref, cand *Sample) MetricComparison {
	mc := MetricComparison{
		Metric:   metric,
		Ref:      ref.Summary(),
		Cand:     cand.Summary(),
		RelError: make(map[string]float64, len(StatNames)),
		Distance: Distances(ref, cand),
	}
	for _, s := range StatNames {
		mc.RelError[s] = RelError(mc.Ref.Get(s), mc.Cand.Get(s))
	}
	return mc
}

// Distances is KS and W1 between two samples: the exact merge walks when
// both are exact, SketchDistances otherwise.
func Distances(a, b *Sample) Distance {
	if a.Exact() && b.Exact() {
		sa, sb := a.Sorted(), b.Sorted()
		return Distance{KS: KS(sa, sb), W1: W1(sa, sb)}
	}
	return SketchDistances(a, b)
}
