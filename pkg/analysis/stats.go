// Package analysis turns canonical run folders into latency metrics (TTFT,
// TPOT, ITL, E2E, batch composition) and compares runs: summary statistics,
// signed relative errors, the two-sample Kolmogorov–Smirnov statistic and the
// Wasserstein-1 distance. Everything works on sorted float64 slices so that
// millions of token rows cost a sort, not a map.
package analysis

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

// Stat names, in the order tables list them.
const (
	StatCount = "count"
	StatMean  = "mean"
	StatP50   = "p50"
	StatP90   = "p90"
	StatP95   = "p95"
	StatP99   = "p99"
	StatMin   = "min"
	StatMax   = "max"
)

// StatNames lists every statistic of a Summary in table order.
var StatNames = []string{StatCount, StatMean, StatP50, StatP90, StatP95, StatP99, StatMin, StatMax}

// QuantileMethod is stated in every report so readers can reproduce numbers.
const QuantileMethod = "linear interpolation between order statistics (Hyndman & Fan type 7, as numpy's default and R's quantile type 7)"

// Summary holds the statistics of one sample. Values are in the sample's unit
// (milliseconds for latencies). An empty sample has Count 0 and NaN elsewhere.
type Summary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	// Quantiles says how P50-P99 were computed: MethodExact, or
	// MethodSketch within RelAccuracy (relative) of the exact values.
	Quantiles   string  `json:"quantiles"`
	RelAccuracy float64 `json:"rel_accuracy,omitempty"`
}

// Get returns the statistic named by one of StatNames.
func (s Summary) Get(stat string) float64 {
	switch stat {
	case StatCount:
		return float64(s.Count)
	case StatMean:
		return s.Mean
	case StatP50:
		return s.P50
	case StatP90:
		return s.P90
	case StatP95:
		return s.P95
	case StatP99:
		return s.P99
	case StatMin:
		return s.Min
	case StatMax:
		return s.Max
	}
	return math.NaN()
}

// Quantile returns the q-quantile of an ascending sample by linear
// interpolation between order statistics (type 7): h = (n-1)q, the value
// between x[floor h] and x[floor h + 1]. gonum's stat.Quantile offers only the
// empirical and type 4 estimators, and vLLM's and Vidur's reports use numpy's
// default, which is type 7, so gsim's numbers line up with theirs.
func Quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 || math.IsNaN(q) || q < 0 || q > 1 {
		return math.NaN()
	}
	h := float64(n-1) * q
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	frac := h - float64(lo)
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

// Summarize computes a Summary of an ascending sample.
func Summarize(sorted []float64) Summary {
	if len(sorted) == 0 {
		nan := math.NaN()
		return Summary{Mean: nan, P50: nan, P90: nan, P95: nan, P99: nan, Min: nan, Max: nan, Quantiles: MethodExact}
	}
	return Summary{
		Count: len(sorted),
		// Kahan-style compensated summation keeps the mean of millions of
		// token gaps exact to the last digit shown.
		Mean:      floats.SumCompensated(sorted) / float64(len(sorted)),
		P50:       Quantile(sorted, 0.50),
		P90:       Quantile(sorted, 0.90),
		P95:       Quantile(sorted, 0.95),
		P99:       Quantile(sorted, 0.99),
		Min:       sorted[0],
		Max:       sorted[len(sorted)-1],
		Quantiles: MethodExact,
	}
}

// RelError is the signed relative error (cand-ref)/ref; NaN when ref is 0 or
// either side is undefined, because a percentage of nothing means nothing.
func RelError(ref, cand float64) float64 {
	if ref == 0 || math.IsNaN(ref) || math.IsNaN(cand) {
		return math.NaN()
	}
	return (cand - ref) / ref
}
