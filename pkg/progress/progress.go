// Package progress shows what the executor is doing: one live region of
// bars on a terminal, timestamped lines anywhere else (logs, CI, tests), so
// the same run reads well in both.
//
// The executor talks to a Display through a few events. Optional
// capabilities are separate small interfaces (Counter today) that a
// display implements if it can show them and the executor feeds through
// helpers (SetCounts) that do nothing otherwise, so a new kind of event
// (a batch system's queued jobs, say) is added as a field of Counts or a
// new optional interface without touching every Display.
package progress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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

// Counts is where the run as a whole stands.
type Counts struct {
	// Total is the number of instances the run covers.
	Total int
	// Done counts complete instances: ran, up to date or reused.
	Done    int
	Running int
	Failed  int
	// Skipped counts instances that will not run (after a failure or an
	// interrupt).
	Skipped int
}

func (c Counts) String() string {
	s := fmt.Sprintf("%d/%d done", c.Done, c.Total)
	if c.Running > 0 {
		s += fmt.Sprintf(", %d running", c.Running)
	}
	if c.Failed > 0 {
		s += fmt.Sprintf(", %d failed", c.Failed)
	}
	if c.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped", c.Skipped)
	}
	return s
}

// Counter is implemented by displays that show the overall counts.
type Counter interface {
	SetCounts(Counts)
}

// SetCounts passes c to d if d shows counts. The executor calls it before
// the event that changed them, so a Finished line can carry the new count.
func SetCounts(d Display, c Counts) {
	if cd, ok := d.(Counter); ok {
		cd.SetCounts(c)
	}
}

// Mode chooses a display.
type Mode string

// Modes of --progress.
const (
	ModeAuto  Mode = "auto"  // bars on a terminal of known width, else plain
	ModeBars  Mode = "bars"  // bars even where auto would not
	ModePlain Mode = "plain" // timestamped lines
	ModeNone  Mode = "none"  // no progress; messages (warnings, waits) still print
)

// Modes lists the valid modes, for flag help and errors.
var Modes = []Mode{ModeAuto, ModeBars, ModePlain, ModeNone}

// ParseMode reads a --progress value.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("--progress %s: want one of %s", s, strings.Join(names, ", "))
}

// New picks bars when w is a terminal of known width, plain lines
// otherwise.
func New(w io.Writer) Display { return NewMode(w, ModeAuto) }

// NewMode returns the display for mode on w.
func NewMode(w io.Writer, mode Mode) Display {
	switch mode {
	case ModeBars:
		width := 0
		if f, ok := w.(*os.File); ok {
			width, _ = termWidth(f)
		}
		return newBars(w, width)
	case ModeNone:
		return &quiet{Plain: NewPlain(w, time.Now, 0)}
	case ModeAuto:
		if f, ok := w.(*os.File); ok {
			// A terminal of unknown width (a pty without a size, as under
			// `script -qc`) cannot lay bars out: plain lines there.
			if width, ok := termWidth(f); ok && width > 0 {
				return newBars(f, width)
			}
		}
	}
	return NewPlain(w, time.Now, 5*time.Second)
}

// termWidth is f's width if f is a terminal that knows its size.
func termWidth(f *os.File) (int, bool) {
	if !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		return 0, false
	}
	return width, true
}

// Plain writes one timestamped line per event; progress lines per
// instance are throttled to one per every interval. Finished lines carry
// the overall count ("(12/39 done)") when the executor gives it.
type Plain struct {
	mu       sync.Mutex
	w        io.Writer
	now      func() time.Time
	interval time.Duration
	last     map[string]time.Time
	counts   *Counts
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
	if p.counts != nil {
		p.line("%s %s (%d/%d done)", id, outcome(d, err), p.counts.Done, p.counts.Total)
		return
	}
	p.line("%s %s", id, outcome(d, err))
}

// SetCounts implements Counter.
func (p *Plain) SetCounts(c Counts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = &c
}

func (p *Plain) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(format, args...)
}

func (p *Plain) Close() {}

// quiet is --progress none: only Printf's messages.
type quiet struct{ *Plain }

func (quiet) Started(string)                            {}
func (quiet) Progress(string, float64, float64, string) {}
func (quiet) Finished(string, time.Duration, error)     {}

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
