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

	"github.com/gsim-dev/gsim/pkg/gpus"
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

// slotFile is the lock of slot i of res: the device's own lock when the
// slots are devices (so two processes that list the same GPU at different
// positions, or by index and by UUID, still never share it), else a
// numbered counter slot.
func slotFile(dir, res string, i int, devs []gpus.Device) string {
	if devs != nil {
		return filepath.Join(dir, fmt.Sprintf("%s-dev-%s.lock", url.PathEscape(res), url.PathEscape(devs[i].LockName())))
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%d.lock", url.PathEscape(res), i))
}

// acquireSlots takes, for every resource n needs, that many of the machine's
// slots (flocks in dir), waiting while other gsim processes, or other
// stages of this one, hold them; it returns the device ids it holds for
// resources whose slots are devices. It holds nothing while it waits, so
// stages that each need several slots cannot deadlock, and a stage needing
// k devices gets k at once or none. The kernel drops the locks of a killed
// process.
func acquireSlots(ctx context.Context, dir string, need map[string]int, capacity func(string) int,
	devices func(string) []gpus.Device, waiting func(res string)) (release func(), held map[string][]string, err error) {
	var locks []*flock.Flock
	release = func() {
		for _, l := range locks {
			_ = l.Unlock()
		}
		locks = nil
	}
	if dir == "" || len(need) == 0 {
		return release, nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return release, nil, fmt.Errorf("resource slots: %w", err)
	}
	res := make([]string, 0, len(need))
	for r := range need {
		res = append(res, r)
	}
	sort.Strings(res)
	told := false
	for {
		short := ""
		held = map[string][]string{}
		for _, r := range res {
			devs := devices(r)
			got := 0
			for i := 0; i < capacity(r) && got < need[r]; i++ {
				l := flock.New(slotFile(dir, r, i, devs))
				ok, err := l.TryLock()
				if err != nil {
					release()
					return release, nil, fmt.Errorf("resource slot %s: %w", r, err)
				}
				if ok {
					locks = append(locks, l)
					got++
					if devs != nil {
						held[r] = append(held[r], devs[i].ID)
					}
				}
			}
			if got < need[r] {
				short = r
				break
			}
		}
		if short == "" {
			return release, held, nil
		}
		release()
		if !told && waiting != nil {
			waiting(short)
			told = true
		}
		select {
		case <-ctx.Done():
			return release, nil, fmt.Errorf("waiting for a %s slot: %w", short, ctx.Err())
		case <-time.After(slotPoll):
		}
	}
}
