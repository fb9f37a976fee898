package analysis

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ecdf evaluates an ascending sample's ECDF at x the slow way.
func ecdf(s []float64, x float64) float64 {
	c := 0
	for _, v := range s {
		if v <= x {
			c++
		}
	}
	return float64(c) / float64(len(s))
}

func bruteKS(a, b []float64) float64 {
	d := 0.0
	for _, x := range append(append([]float64{}, a...), b...) {
		d = max(d, math.Abs(ecdf(a, x)-ecdf(b, x)))
	}
	return d
}

// bruteW1 integrates |F_a - F_b| on a fine grid.
func bruteW1(a, b []float64) float64 {
	lo, hi := min(a[0], b[0]), max(a[len(a)-1], b[len(b)-1])
	const steps = 200000
	dx := (hi - lo) / steps
	sum := 0.0
	for k := 0; k < steps; k++ {
		x := lo + (float64(k)+0.5)*dx
		sum += math.Abs(ecdf(a, x)-ecdf(b, x)) * dx
	}
	return sum
}

func TestKSW1Known(t *testing.T) {
	a := []float64{1, 2, 3}
	b := []float64{2, 3, 4}
	if got := KS(a, b); math.Abs(got-1.0/3) > 1e-12 {
		t.Errorf("KS = %v, want 1/3", got)
	}
	if got := W1(a, b); math.Abs(got-1) > 1e-12 {
		t.Errorf("W1 = %v, want 1 (a shift by 1)", got)
	}
	if got := KS([]float64{1, 2}, []float64{5, 6}); got != 1 {
		t.Errorf("disjoint KS = %v, want 1", got)
	}
	if !math.IsNaN(KS(nil, a)) || !math.IsNaN(W1(a, nil)) {
		t.Error("empty samples must give NaN")
	}
}

func TestKSW1Properties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 40; trial++ {
		a := sample(r, 1+r.IntN(120), 10)
		b := sample(r, 1+r.IntN(120), 5+r.Float64()*20)
		ks := KS(a, b)
		if ks < 0 || ks > 1 {
			t.Fatalf("KS out of [0,1]: %v", ks)
		}
		if want := bruteKS(a, b); math.Abs(ks-want) > 1e-12 {
			t.Fatalf("KS = %v, brute force %v", ks, want)
		}
		if ks != KS(b, a) || W1(a, b) != W1(b, a) {
			// Symmetry holds exactly up to summation order.
			if math.Abs(W1(a, b)-W1(b, a)) > 1e-9 || ks != KS(b, a) {
				t.Fatalf("not symmetric")
			}
		}
		if trial < 8 {
			w, want := W1(a, b), bruteW1(a, b)
			if math.Abs(w-want) > 1e-3*max(1, want) {
				t.Fatalf("W1 = %v, grid integral %v", w, want)
			}
		}
		if KS(a, a) != 0 || W1(a, a) != 0 {
			t.Fatalf("identical samples must have KS 0 and W1 0")
		}
		// Shifting every value by c moves the distribution by exactly c.
		c := 2.5
		s := make([]float64, len(a))
		for i, v := range a {
			s[i] = v + c
		}
		if w := W1(a, s); math.Abs(w-c) > 1e-9 {
			t.Fatalf("W1 of a shift by %v = %v", c, w)
		}
	}
}

func TestECDFSteps(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 10, 999, 1000, 1001, 50000} {
		s := sample(r, n, 30)
		xs, ys := ECDFSteps(s, 2000)
		if len(xs) != len(ys) || len(xs) == 0 || len(xs) > 2000 {
			t.Fatalf("n=%d: %d/%d points", n, len(xs), len(ys))
		}
		if ys[len(ys)-1] != 1 {
			t.Fatalf("n=%d: ECDF ends at %v, want 1", n, ys[len(ys)-1])
		}
		if ys[0] != 0 || xs[0] != s[0] || xs[len(xs)-1] != s[len(s)-1] {
			t.Fatalf("n=%d: extremes lost: first (%v,%v) last x %v, min %v max %v", n, xs[0], ys[0], xs[len(xs)-1], s[0], s[len(s)-1])
		}
		for i := 1; i < len(xs); i++ {
			if xs[i] < xs[i-1] || ys[i] < ys[i-1] {
				t.Fatalf("n=%d: steps not monotone at %d", n, i)
			}
		}
		// Every drawn point lies on the true ECDF: its height is F at x
		// (upper points) or F just below x (lower points).
		for i := 1; i < len(xs); i += 2 {
			if want := ecdf(s, xs[i]); n <= 1001 && math.Abs(ys[i]-want) > 1e-12 {
				t.Fatalf("n=%d: point %d at x=%v has F=%v, want %v", n, i, xs[i], ys[i], want)
			}
		}
	}
	if xs, _ := ECDFSteps(nil, 10); xs != nil {
		t.Fatal("empty sample must give no points")
	}
}
