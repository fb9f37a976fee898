// Package progress shows what the executor is doing: live bars on a terminal,
// timestamped lines anywhere else (logs, CI, tests), so the same run reads
// well in both.
package progress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Display receives the executor's events. Implementations are safe for
// concurrent use.
type Display interface {
	Started(id string)
	Progress(id string, done, total float64, msg string)
	Finished(id string, d time.Duration, err error)
	// Printf writes a message line without tearing live bars.
	Printf(format string, args ...any)
	// Close flushes; no events may follow.
	Close()
}

// New picks bars when w is a terminal, plain lines otherwise.
func New(w io.Writer) Display {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		// A terminal of unknown width (a pty without a size) cannot show bars.
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 0 {
			return newBars(f)
		}
	}
	return NewPlain(w, time.Now, 5*time.Second)
}

// Plain writes one timestamped line per event; progress lines per instance
// are throttled to one per every interval.
type Plain struct {
	mu       sync.Mutex
	w        io.Writer
	now      func() time.Time
	interval time.Duration
	last     map[string]time.Time
}

// NewPlain returns a line display; now is injectable for tests.
func NewPlain(w io.Writer, now func() time.Time, interval time.Duration) *Plain {
	return &Plain{w: w, now: now, interval: interval, last: map[string]time.Time{}}
}

func (p *Plain) line(format string, args ...any) {
	fmt.Fprintf(p.w, "%s %s\n", p.now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

func (p *Plain) Started(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last[id] = p.now()
	p.line("%s started", id)
}

func (p *Plain) Progress(id string, done, total float64, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Sub(p.last[id]) < p.interval {
		return
	}
	p.last[id] = now
	p.line("%s %s", id, describe(done, total, msg))
}

func (p *Plain) Finished(id string, d time.Duration, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.last, id)
	p.line("%s %s", id, outcome(d, err))
}

func (p *Plain) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(format, args...)
}

func (p *Plain) Close() {}

func outcome(d time.Duration, err error) string {
	switch {
	case err == nil:
		return "done in " + Duration(d)
	case errors.Is(err, context.Canceled):
		return "cancelled after " + Duration(d)
	default:
		return "FAILED after " + Duration(d)
	}
}

func describe(done, total float64, msg string) string {
	s := fmt.Sprintf("%g", done)
	if total > 0 {
		s = fmt.Sprintf("%g/%g (%.0f%%)", done, total, 100*done/total)
	}
	if msg != "" {
		s += " " + msg
	}
	return s
}

// Duration formats d for people: 3.2s, 1m05s, 120ms.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
}
