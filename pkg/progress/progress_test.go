package progress

import (
	"errors"
	"regexp"
	"strings"
	"sync"
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
	SetCounts(p, Counts{Total: 3, Done: 1, Failed: 1})
	p.Finished("sim", 90*time.Second, errors.New("x"))
	want := `2026-11-26T20:01:02Z bench[rate=4] started
2026-11-26T20:01:08Z bench[rate=4] 5/10 (50%) requests
2026-11-26T20:01:08Z bench[rate=4] done in 3.2s
2026-11-26T20:01:08Z sim started
2026-11-26T20:01:08Z sim FAILED after 1m30s (1/3 done)
`
	if sb.String() != want {
		t.Errorf("got\n%s\nwant\n%s", sb.String(), want)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "bars", "plain", "none"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("fancy"); err == nil || !strings.Contains(err.Error(), "want one of auto, bars, plain, none") {
		t.Errorf("ParseMode(fancy): %v", err)
	}
}

// Not a terminal: auto is plain lines, whatever the writer.
func TestAutoOffTerminalIsPlain(t *testing.T) {
	var sb strings.Builder
	if _, ok := NewMode(&sb, ModeAuto).(*Plain); !ok {
		t.Error("auto on a non-terminal is not plain")
	}
}

func TestNoneKeepsMessagesOnly(t *testing.T) {
	var sb strings.Builder
	d := NewMode(&sb, ModeNone)
	d.Started("a")
	d.Progress("a", 1, 2, "x")
	d.Finished("a", time.Second, nil)
	d.Printf("warning: %s", "w")
	d.Close()
	if got := sb.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "warning: w") {
		t.Errorf("got %q, want only the warning line", got)
	}
}

// syncBuf is written by mpb's goroutine and read by the test.
type syncBuf struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// The region: bars for running instances, the overall counter, no line for
// a finished instance, a line for a failed one.
func TestBarsRegion(t *testing.T) {
	var buf syncBuf
	d := NewMode(&buf, ModeBars)
	SetCounts(d, Counts{Total: 3, Running: 2})
	d.Started("replay[rate=2]")
	d.Started("fit")
	d.Progress("replay[rate=2]", 50, 100, "requests")
	// Wait for a refresh that shows it (mpb draws every 150ms).
	var mid string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if mid = ansi.ReplaceAllString(buf.String(), ""); strings.Contains(mid, "50%") && strings.Contains(mid, "fit") {
			break
		}
	}
	SetCounts(d, Counts{Total: 3, Done: 1, Running: 1})
	d.Finished("replay[rate=2]", time.Second, nil)
	SetCounts(d, Counts{Total: 3, Done: 1, Failed: 1, Skipped: 1})
	d.Finished("fit", time.Second, errors.New("boom"))
	d.Close()
	out := ansi.ReplaceAllString(buf.String(), "")
	for _, want := range []string{"replay[rate=2]", "50%", "requests", "fit", "stages 0/3 done, 2 running"} {
		if !strings.Contains(mid, want) {
			t.Errorf("live region lacks %q:\n%s", want, mid)
		}
	}
	if !strings.Contains(out, "fit FAILED after 1.0s") {
		t.Errorf("no failure line:\n%s", out)
	}
	if strings.Contains(out, "done in") {
		t.Errorf("a finished instance printed a line into the region:\n%s", out)
	}
	if !strings.Contains(out, "stages 1/3 done, 1 failed, 1 skipped") {
		t.Errorf("final counter missing:\n%s", out)
	}
}

func TestClock(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", 999 * time.Millisecond: "0s", 42 * time.Second: "42s",
		185 * time.Second: "3m05s", 62 * time.Minute: "1h02m"} {
		if got := clock(d); got != want {
			t.Errorf("clock(%v) = %q, want %q", d, got, want)
		}
	}
}
