package predict

import (
	"math/rand/v2"
	"slices"
)

// forest is a random forest of regression trees grown the way Vidur's
// sklearn RandomForestRegressor grows them with the settings gsim's Vidur
// engine passes (bootstrap samples, every feature considered at every
// split, squared-error splits at midpoints between neighbouring values,
// max_depth 16, min_samples_split 2). It exists to reproduce Vidur, whose
// forests answer between profiled points with a bootstrap-weighted blend of
// nearby points rather than a straight line; the random draws are gsim's
// own (seeded), so it matches sklearn's forest in expectation, not tree by
// tree. Predictions are memoised: simulations ask the same shapes again and
// again.
type forest struct {
	trees [][]node
	cache map[[2]float64]float64
}

type node struct {
	feature     int // -1: leaf
	threshold   float64
	left, right int32
	value       float64
}

// Forest settings Vidur's engine uses.
const (
	forestTrees    = 250
	forestMaxDepth = 16
)

func newForest(xs [][2]float64, ys []float64, dims int, seed uint64) *forest {
	f := &forest{cache: map[[2]float64]float64{}}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := len(xs)
	idx := make([]int, n)
	for t := 0; t < forestTrees; t++ {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		var tree []node
		grow(&tree, xs, ys, idx, dims, 0)
		f.trees = append(f.trees, tree)
	}
	return f
}

// grow appends the subtree for rows idx and returns its index.
func grow(tree *[]node, xs [][2]float64, ys []float64, idx []int, dims, depth int) int32 {
	me := int32(len(*tree))
	var sum float64
	for _, i := range idx {
		sum += ys[i]
	}
	*tree = append(*tree, node{feature: -1, value: sum / float64(len(idx))})
	if depth >= forestMaxDepth || len(idx) < 2 {
		return me
	}
	bestFeat, bestThr, bestSSE := -1, 0.0, 0.0
	var parentSSE float64
	mean := sum / float64(len(idx))
	for _, i := range idx {
		d := ys[i] - mean
		parentSSE += d * d
	}
	if parentSSE == 0 {
		return me
	}
	bestSSE = parentSSE
	order := slices.Clone(idx)
	for f := 0; f < dims; f++ {
		slices.SortFunc(order, func(a, b int) int {
			switch {
			case xs[a][f] < xs[b][f]:
				return -1
			case xs[a][f] > xs[b][f]:
				return 1
			}
			return 0
		})
		// Prefix sums give each split's squared error in one pass.
		var lsum, lsq float64
		var tsq float64
		for _, i := range order {
			tsq += ys[i] * ys[i]
		}
		for k := 0; k < len(order)-1; k++ {
			y := ys[order[k]]
			lsum += y
			lsq += y * y
			a, b := xs[order[k]][f], xs[order[k+1]][f]
			if a == b {
				continue
			}
			nl, nr := float64(k+1), float64(len(order)-k-1)
			rsum, rsq := sum-lsum, tsq-lsq
			sse := (lsq - lsum*lsum/nl) + (rsq - rsum*rsum/nr)
			if sse < bestSSE-1e-12*parentSSE {
				bestFeat, bestThr, bestSSE = f, (a+b)/2, sse
			}
		}
	}
	if bestFeat < 0 {
		return me
	}
	var l, r []int
	for _, i := range idx {
		if xs[i][bestFeat] <= bestThr {
			l = append(l, i)
		} else {
			r = append(r, i)
		}
	}
	li := grow(tree, xs, ys, l, dims, depth+1)
	ri := grow(tree, xs, ys, r, dims, depth+1)
	(*tree)[me] = node{feature: bestFeat, threshold: bestThr, left: li, right: ri}
	return me
}

func (f *forest) predict(x [2]float64) float64 {
	if v, ok := f.cache[x]; ok {
		return v
	}
	var s float64
	for _, t := range f.trees {
		i := int32(0)
		for t[i].feature >= 0 {
			if x[t[i].feature] <= t[i].threshold {
				i = t[i].left
			} else {
				i = t[i].right
			}
		}
		s += t[i].value
	}
	v := s / float64(len(f.trees))
	f.cache[x] = v
	return v
}

// forest1 and forest2 adapt a forest to the one- and two-feature lookups.
type forest1 struct{ f *forest }

func (f forest1) at(x float64) float64 { return f.f.predict([2]float64{x, 0}) }

type forest2 struct{ f *forest }

func (f forest2) at(a, b float64) float64 { return f.f.predict([2]float64{a, b}) }
