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

// SketchDistances is KS and W1 between two samples of which at least one is
// sketched. Both are taken as sketches of the same accuracy (an exact sample
// is bucketed), so their buckets line up and both CDFs are known exactly at
// every bucket boundary:
//
//   - KS: inside a bucket either CDF may move anywhere between its values at
//     the bucket's two bounds, so sup |F_a - F_b| lies between the largest
//     gap at the boundaries and the largest gap a bucket allows; KS is the
//     middle of that interval and KSError its half-width.
//   - W1: the distance between the two bucketed distributions, each value
//     moved to its bucket's representative, which is within relative error
//     α of it; moving every value of a by at most α|x| moves W1 by at most
//     α·E|X_a|, so W1Error = α·(E|X_a| + E|X_b|) with exact means.
func SketchDistances(a, b *Sample) Distance {
	if a.Len() == 0 || b.Len() == 0 {
		return Distance{KS: math.NaN(), W1: math.NaN()}
	}
	sa, sb := a.sketchOf(), b.sketchOf()
	ba, bb := sa.buckets(), sb.buckets()
	na, nb := float64(sa.Count()), float64(sb.Count())
	var i, j int
	var ca, cb int64 // counts up to and including the current boundary
	var lo, hi, w1, prevV float64
	first := true
	for i < len(ba) || j < len(bb) {
		var v float64
		switch {
		case i == len(ba):
			v = bb[j].v
		case j == len(bb):
			v = ba[i].v
		default:
			v = min(ba[i].v, bb[j].v)
		}
		fa0, fb0 := float64(ca)/na, float64(cb)/nb
		if !first {
			w1 += math.Abs(fa0-fb0) * (v - prevV)
		}
		first = false
		if i < len(ba) && ba[i].v == v {
			ca += ba[i].count
			i++
		}
		if j < len(bb) && bb[j].v == v {
			cb += bb[j].count
			j++
		}
		fa1, fb1 := float64(ca)/na, float64(cb)/nb
		lo = max(lo, math.Abs(fa1-fb1))
		hi = max(hi, math.Abs(fa1-fb0), math.Abs(fa0-fb1), math.Abs(fa1-fb1))
		prevV = v
	}
	alpha := sa.Alpha()
	return Distance{
		KS: (lo + hi) / 2, KSError: (hi - lo) / 2,
		W1: w1, W1Error: alpha * (a.meanAbs() + b.meanAbs()),
	}
}
