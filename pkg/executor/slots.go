package executor

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/gofrs/flock"
)

// DefaultSlotDir is where gsim processes of this user on this machine share
// resource slots: the GPU is the machine's, not one run's, so two runs (of
// one store or of two) must not put GPU stages on it at once.
func DefaultSlotDir() string {
	if d := os.Getenv("GSIM_SLOT_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("gsim-%d-slots", os.Getuid()))
}

// slotPoll is how often a stage waiting for a slot another process holds
// looks again.
const slotPoll = 100 * time.Millisecond

// acquireSlots takes, for every resource n needs, that many of the machine's
// slots (flocks dir/<res>-<i>.lock, i < capacity), waiting while other gsim
// processes hold them. It holds nothing while it waits, so processes that
// each need several slots cannot deadlock. The kernel drops the locks of a
// killed process.
func acquireSlots(ctx context.Context, dir string, need map[string]int, capacity func(string) int, waiting func(res string)) (release func(), err error) {
	var held []*flock.Flock
	release = func() {
		for _, l := range held {
			_ = l.Unlock()
		}
		held = nil
	}
	if dir == "" || len(need) == 0 {
		return release, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return release, fmt.Errorf("resource slots: %w", err)
	}
	res := make([]string, 0, len(need))
	for r := range need {
		res = append(res, r)
	}
	sort.Strings(res)
	told := false
	for {
		short := ""
		for _, r := range res {
			got := 0
			for i := 0; i < capacity(r) && got < need[r]; i++ {
				l := flock.New(filepath.Join(dir, fmt.Sprintf("%s-%d.lock", url.PathEscape(r), i)))
				ok, err := l.TryLock()
				if err != nil {
					release()
					return release, fmt.Errorf("resource slot %s: %w", r, err)
				}
				if ok {
					held = append(held, l)
					got++
				}
			}
			if got < need[r] {
				short = r
				break
			}
		}
		if short == "" {
			return release, nil
		}
		release()
		if !told && waiting != nil {
			waiting(short)
			told = true
		}
		select {
		case <-ctx.Done():
			return release, fmt.Errorf("waiting for a %s slot: %w", short, ctx.Err())
		case <-time.After(slotPoll):
		}
	}
}
