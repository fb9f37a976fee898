package par

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// TestForCallsEachIndexOnce: every i < n is handled exactly once, below
// and above MinItems, at chunk edges, on one core and on several (run
// with -race).
func TestForCallsEachIndexOnce(t *testing.T) {
	for _, procs := range []int{1, 2, 5} {
		old := runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 63, MinItems - 1, MinItems, MinItems + 1, 64*7 + 1, 10_000} {
			calls := make([]atomic.Int32, n)
			For(n, func(i int) { calls[i].Add(1) })
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Fatalf("GOMAXPROCS %d, n %d: index %d called %d times", procs, n, i, c)
				}
			}
		}
		runtime.GOMAXPROCS(old)
	}
}
