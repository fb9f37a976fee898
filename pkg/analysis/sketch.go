package analysis

import (
	"fmt"
	"math"
)

// SketchAccuracy is the relative accuracy of every quantile gsim reads from
// a sketch: an estimate q̂ of a value q satisfies |q̂ - q| <= 0.5% of |q|.
const SketchAccuracy = 0.005

// SketchMethod is stated in every report that used a sketch.
var SketchMethod = fmt.Sprintf("DDSketch (logarithmic buckets, relative accuracy %.1f%%: every quantile is within %.1f%% of the exact type-7 quantile; count, mean, min and max stay exact)",
	100*SketchAccuracy, 100*SketchAccuracy)

// Sketch is a DDSketch (Masson, Rim, Lee, VLDB 2019): values fall into
// buckets whose bounds grow by a factor γ = (1+α)/(1-α), so any value in a
// bucket is within relative error α of the bucket's representative value
// 2γ^i/(γ+1). Memory grows with the log of the value range (about 2,100
// buckets for nanoseconds to hours at α = 0.5%), never with the count.
type Sketch struct {
	alpha, gamma, lnGamma float64
	pos, neg              bucketStore
	zero                  int64
	n                     int64
	// The last value and its bucket: token gaps repeat one value for every
	// request of an engine step, so most adds skip the logarithm.
	lastV   float64
	lastIdx int
}

// NewSketch returns an empty sketch of relative accuracy alpha in (0, 1).
func NewSketch(alpha float64) *Sketch {
	g := (1 + alpha) / (1 - alpha)
	return &Sketch{alpha: alpha, gamma: g, lnGamma: math.Log(g), lastV: math.NaN()}
}

// Alpha is the sketch's relative accuracy.
func (s *Sketch) Alpha() float64 { return s.alpha }

// Count is the number of values added.
func (s *Sketch) Count() int64 { return s.n }

func (s *Sketch) index(v float64) int {
	if v == s.lastV {
		return s.lastIdx
	}
	i := int(math.Ceil(math.Log(v) / s.lnGamma))
	s.lastV, s.lastIdx = v, i
	return i
}

// value is the representative of bucket i.
func (s *Sketch) value(i int) float64 { return 2 * math.Pow(s.gamma, float64(i)) / (s.gamma + 1) }

// Add adds one value; NaN is ignored.
func (s *Sketch) Add(v float64) { s.AddN(v, 1) }

// AddN adds v k times; NaN is ignored.
func (s *Sketch) AddN(v float64, k int64) {
	switch {
	case k <= 0:
		return
	case v > 0:
		s.pos.add(s.index(v), k)
	case v < 0:
		s.neg.add(s.index(-v), k)
	case v == 0:
		s.zero += k
	default:
		return
	}
	s.n += k
}

// bucketStore counts per bucket index in a dense slice.
type bucketStore struct {
	offset int // index of counts[0]
	counts []int64
}

func (b *bucketStore) add(i int, c int64) {
	if len(b.counts) == 0 {
		b.offset = i
		b.counts = make([]int64, 1, 64)
	}
	if i < b.offset {
		grow := b.offset - i
		nc := make([]int64, len(b.counts)+grow, len(b.counts)+grow+64)
		copy(nc[grow:], b.counts)
		b.counts, b.offset = nc, i
	}
	for i-b.offset >= len(b.counts) {
		b.counts = append(b.counts, 0)
	}
	b.counts[i-b.offset] += c
}

// bucket is one non-empty bucket in ascending value order.
type bucket struct {
	v     float64 // representative value
	lo    float64 // lower bound (exclusive) of the values it holds
	hi    float64 // upper bound (inclusive)
	count int64
}

// buckets lists the non-empty buckets in ascending value order.
func (s *Sketch) buckets() []bucket {
	var out []bucket
	for k := len(s.neg.counts) - 1; k >= 0; k-- {
		if c := s.neg.counts[k]; c > 0 {
			i := s.neg.offset + k
			hi, lo := math.Pow(s.gamma, float64(i)), math.Pow(s.gamma, float64(i-1))
			out = append(out, bucket{v: -s.value(i), lo: -hi, hi: -lo, count: c})
		}
	}
	if s.zero > 0 {
		out = append(out, bucket{v: 0, lo: 0, hi: 0, count: s.zero})
	}
	for k, c := range s.pos.counts {
		if c > 0 {
			i := s.pos.offset + k
			out = append(out, bucket{v: s.value(i), lo: math.Pow(s.gamma, float64(i-1)), hi: math.Pow(s.gamma, float64(i)), count: c})
		}
	}
	return out
}

// orderStat estimates the k-th smallest value (0-based) from buckets.
func orderStat(bs []bucket, k int64) float64 {
	var cum int64
	for _, b := range bs {
		cum += b.count
		if k < cum {
			return b.v
		}
	}
	if len(bs) == 0 {
		return math.NaN()
	}
	return bs[len(bs)-1].v
}

// Quantile is the type-7 quantile of the added values, from the sketch:
// both order statistics it interpolates between are bucket representatives,
// each within relative error alpha of the true one, and so is their blend.
func (s *Sketch) Quantile(q float64) float64 {
	return s.quantileOf(s.buckets(), q)
}

func (s *Sketch) quantileOf(bs []bucket, q float64) float64 {
	n := s.n
	if n == 0 || math.IsNaN(q) || q < 0 || q > 1 {
		return math.NaN()
	}
	h := float64(n-1) * q
	lo := int64(math.Floor(h))
	if lo >= n-1 {
		return orderStat(bs, n-1)
	}
	a, b := orderStat(bs, lo), orderStat(bs, lo+1)
	return a + (h-float64(lo))*(b-a)
}
