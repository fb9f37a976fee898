package analysis

import "sort"

// ECDFSteps returns the points of an ascending sample's empirical CDF drawn as
// a staircase: each jump is two points, (x, F before x) then (x, F at x), so a
// plain line chart draws the exact step function. With more than maxPoints
// points it keeps evenly spaced ranks plus the first and last order
// statistics, so the extremes (the P99.9 tail a reader looks for) survive
// downsampling. maxPoints below 4 is treated as 4.
func ECDFSteps(sorted []float64, maxPoints int) (xs, ys []float64) {
	n := len(sorted)
	if n == 0 {
		return nil, nil
	}
	maxPoints = max(maxPoints, 4)
	// Indices of the order statistics whose jumps are drawn: the last index
	// of each run of ties, so a jump lands at the full height of its ties.
	keep := maxPoints / 2
	var idx []int
	if n <= keep {
		idx = make([]int, 0, n)
		for i := 0; i < n; i++ {
			if i == n-1 || sorted[i+1] != sorted[i] {
				idx = append(idx, i)
			}
		}
	} else {
		idx = make([]int, 0, keep)
		last := -1
		for k := 0; k < keep; k++ {
			i := int(int64(k) * int64(n-1) / int64(keep-1))
			if k == 0 {
				i = 0
			}
			if i+1 < n && sorted[i+1] == sorted[i] {
				// Jump to the last of the ties by binary search: token
				// gaps repeat a few values millions of times.
				v := sorted[i]
				i += sort.Search(n-i, func(j int) bool { return sorted[i+j] > v }) - 1
			}
			if i > last {
				idx = append(idx, i)
				last = i
			}
		}
	}
	xs = make([]float64, 0, 2*len(idx))
	ys = make([]float64, 0, 2*len(idx))
	prevY := 0.0
	fn := float64(n)
	for _, i := range idx {
		y := float64(i+1) / fn
		xs = append(xs, sorted[i], sorted[i])
		ys = append(ys, prevY, y)
		prevY = y
	}
	return xs, ys
}
