package progress

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPlain(t *testing.T) {
	clock := time.Date(2026, 11, 26, 20, 1, 2, 0, time.UTC)
	now := func() time.Time { return clock }
	var sb strings.Builder
	p := NewPlain(&sb, now, 5*time.Second)
	p.Started("bench[rate=4]")
	clock = clock.Add(time.Second)
	p.Progress("bench[rate=4]", 1, 10, "warming up") // throttled
	clock = clock.Add(5 * time.Second)
	p.Progress("bench[rate=4]", 5, 10, "requests")
	p.Finished("bench[rate=4]", 3200*time.Millisecond, nil)
	p.Started("sim")
	p.Finished("sim", 90*time.Second, errors.New("x"))
	want := `2026-11-26T20:01:02Z bench[rate=4] started
2026-11-26T20:01:08Z bench[rate=4] 5/10 (50%) requests
2026-11-26T20:01:08Z bench[rate=4] done in 3.2s
2026-11-26T20:01:08Z sim started
2026-11-26T20:01:08Z sim FAILED after 1m30s
`
	if sb.String() != want {
		t.Errorf("got\n%s\nwant\n%s", sb.String(), want)
	}
}
