package analysis

import "math"

// KS is the two-sample Kolmogorov–Smirnov statistic sup_x |F_a(x) - F_b(x)|
// of two ascending samples, by one merge walk (O(n+m) after sorting). Both
// ECDFs are evaluated after all ties at x, so identical samples give 0.
// An empty sample gives NaN.
func KS(a, b []float64) float64 {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		return math.NaN()
	}
	var i, j int
	var d float64
	fn, fm := float64(n), float64(m)
	for i < n && j < m {
		x := min(a[i], b[j])
		for i < n && a[i] <= x {
			i++
		}
		for j < m && b[j] <= x {
			j++
		}
		d = max(d, math.Abs(float64(i)/fn-float64(j)/fm))
	}
	return d
}

// W1 is the Wasserstein-1 (earth mover's) distance ∫ |F_a(x) - F_b(x)| dx of
// two ascending samples, in the samples' unit. Between consecutive points of
// the merged samples both ECDFs are constant, so the integral is a sum of
// rectangles. An empty sample gives NaN.
func W1(a, b []float64) float64 {
	n, m := len(a), len(b)
	if n == 0 || m == 0 {
		return math.NaN()
	}
	var i, j int
	var sum, prev float64
	fn, fm := float64(n), float64(m)
	first := true
	for i < n || j < m {
		var x float64
		switch {
		case i == n:
			x = b[j]
		case j == m:
			x = a[i]
		default:
			x = min(a[i], b[j])
		}
		if !first {
			sum += math.Abs(float64(i)/fn-float64(j)/fm) * (x - prev)
		}
		first = false
		for i < n && a[i] <= x {
			i++
		}
		for j < m && b[j] <= x {
			j++
		}
		prev = x
	}
	return sum
}
