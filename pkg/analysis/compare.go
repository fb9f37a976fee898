package analysis

// Distance is how far a candidate's distribution is from the reference's.
type Distance struct {
	// KS is sup |F_ref - F_cand|, in [0, 1].
	KS float64 `json:"ks"`
	// W1 is ∫ |F_ref - F_cand| dx in the metric's unit (ms for latencies).
	W1 float64 `json:"w1"`
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

// CompareSamples compares two ascending samples of one metric.
func CompareSamples(metric string, ref, cand []float64) MetricComparison {
	mc := MetricComparison{
		Metric:   metric,
		Ref:      Summarize(ref),
		Cand:     Summarize(cand),
		RelError: make(map[string]float64, len(StatNames)),
		Distance: Distance{KS: KS(ref, cand), W1: W1(ref, cand)},
	}
	for _, s := range StatNames {
		mc.RelError[s] = RelError(mc.Ref.Get(s), mc.Cand.Get(s))
	}
	return mc
}
