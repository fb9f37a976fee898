package analysis

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// AddRun(v, k) leaves a sample exactly as k calls of Add(v) would: the
// same count, compensated mean, extremes, quantiles and CDF, bit for bit,
// exact or sketched, and across the switch from one to the other.
func TestAddRunIsRepeatedAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, limit := range []int{1 << 30, 50, 0} {
		a, b := NewSampleLimit(limit), NewSampleLimit(limit)
		if limit == 0 {
			a, b = NewSampleFor(ExactLimit+1), NewSampleFor(ExactLimit+1)
		}
		for i := 0; i < 400; i++ {
			v := float64(r.IntN(40)) * 0.37
			switch r.IntN(10) {
			case 0:
				v = 0
			case 1:
				v = -v
			case 2:
				v = math.NaN()
			}
			k := r.IntN(30)
			for range k {
				a.Add(v)
			}
			b.AddRun(v, k)
		}
		a.Finish()
		b.Finish()
		if a.Len() != b.Len() || a.Exact() != b.Exact() || math.Float64bits(a.Mean()) != math.Float64bits(b.Mean()) {
			t.Fatalf("limit %d: Add gave n=%d exact=%v mean=%v, AddRun n=%d exact=%v mean=%v", limit, a.Len(), a.Exact(), a.Mean(), b.Len(), b.Exact(), b.Mean())
		}
		if sa, sb := a.Summary(), b.Summary(); !reflect.DeepEqual(sa, sb) {
			t.Fatalf("limit %d: summaries differ:\n%+v\n%+v", limit, sa, sb)
		}
		if ca, cb := a.CDFPoints(50), b.CDFPoints(50); !reflect.DeepEqual(ca, cb) {
			t.Fatalf("limit %d: CDFs differ", limit)
		}
	}
}
