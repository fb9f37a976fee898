// Package par runs independent work items on every core.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// MinItems is the fewest items worth spreading over cores: a goroutine
// costs its stack's pages, and a small sweep is done before they start.
const MinItems = 256

// For calls f(i) for every i < n, on all cores when n is large.
// f must be safe to call concurrently for different i.
func For(n int, f func(i int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < MinItems || workers < 2 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// Chunks of 64 keep the counter off the hot path.
				lo := int(next.Add(64)) - 64
				if lo >= n {
					return
				}
				for i := lo; i < min(lo+64, n); i++ {
					f(i)
				}
			}
		}()
	}
	wg.Wait()
}
