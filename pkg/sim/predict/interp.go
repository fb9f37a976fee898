package predict

import (
	"math"
	"sort"
)

// line is a piecewise-linear function through sorted points, extended
// linearly beyond both ends (profiles rarely reach the largest batches a
// sweep forms; a flat extension would under-predict them).
type line struct {
	x, y    []float64
	nearest bool
}

// newLine builds a line, averaging y over duplicate x.
func newLine(xs, ys []float64) line {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	var l line
	for i := 0; i < len(idx); {
		j := i
		sum := 0.0
		for j < len(idx) && xs[idx[j]] == xs[idx[i]] {
			sum += ys[idx[j]]
			j++
		}
		l.x = append(l.x, xs[idx[i]])
		l.y = append(l.y, sum/float64(j-i))
		i = j
	}
	return l
}

func (l line) at(x float64) float64 {
	n := len(l.x)
	switch n {
	case 0:
		return 0
	case 1:
		return l.y[0]
	}
	i := sort.SearchFloat64s(l.x, x)
	if l.nearest {
		return l.y[nearestIndex(l.x, x, i)]
	}
	switch {
	case i == 0:
		i = 1
	case i >= n:
		i = n - 1
	}
	x0, x1, y0, y1 := l.x[i-1], l.x[i], l.y[i-1], l.y[i]
	v := y0 + (y1-y0)*(x-x0)/(x1-x0)
	return math.Max(v, 0)
}

// nearestIndex is the grid point a regression tree trained on the grid
// sends x to: sklearn splits at midpoints between neighbouring training
// values and sends x <= midpoint left, and beyond the grid the edge leaf
// applies. i is sort.SearchFloat64s(xs, x).
func nearestIndex(xs []float64, x float64, i int) int {
	switch {
	case i == 0:
		return 0
	case i >= len(xs):
		return len(xs) - 1
	case xs[i] == x:
		return i
	case x <= (xs[i-1]+xs[i])/2:
		return i - 1
	}
	return i
}

// grid2 interpolates over rows that share a first coordinate: a line along
// the second coordinate for every distinct first value, then linearly
// between the two lines that bracket the query.
type grid2 struct {
	a       []float64
	lines   []line
	nearest bool
}

func newGrid2(as, bs, ys []float64, nearest bool) grid2 {
	groups := map[float64][]int{}
	for i, a := range as {
		groups[a] = append(groups[a], i)
	}
	g := grid2{nearest: nearest}
	for a := range groups {
		g.a = append(g.a, a)
	}
	sort.Float64s(g.a)
	for _, a := range g.a {
		var xb, yb []float64
		for _, i := range groups[a] {
			xb = append(xb, bs[i])
			yb = append(yb, ys[i])
		}
		l := newLine(xb, yb)
		l.nearest = nearest
		g.lines = append(g.lines, l)
	}
	return g
}

func (g grid2) at(a, b float64) float64 {
	n := len(g.a)
	switch n {
	case 0:
		return 0
	case 1:
		return g.lines[0].at(b)
	}
	i := sort.SearchFloat64s(g.a, a)
	if i < n && g.a[i] == a {
		return g.lines[i].at(b)
	}
	if g.nearest {
		return g.lines[nearestIndex(g.a, a, i)].at(b)
	}
	switch {
	case i == 0:
		i = 1
	case i >= n:
		i = n - 1
	}
	a0, a1 := g.a[i-1], g.a[i]
	v0, v1 := g.lines[i-1].at(b), g.lines[i].at(b)
	return math.Max(v0+(v1-v0)*(a-a0)/(a1-a0), 0)
}
