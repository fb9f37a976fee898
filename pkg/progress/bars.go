package progress

import (
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// scale turns fractional progress into the integer counts mpb wants.
const scale = 1000

// bars is one live region: a bar per running instance (and only those: a
// finished one leaves the region rather than printing a line into it) and,
// last, the overall counter. Instances that report no progress show a
// spinner and their elapsed time. Failures and Printf messages print as
// lines above the region, which mpb keeps intact.
//
// mu guards the fields below and is never held while calling into mpb:
// mpb renders decorators on its own goroutines, which take mu.
type bars struct {
	mu      sync.Mutex
	p       *mpb.Progress
	bars    map[string]*barState
	counts  Counts
	overall *mpb.Bar
	start   time.Time
	closed  bool
	// barWidth is the width of the bars themselves, names and counts aside.
	barWidth int
}

type barState struct {
	bar   *mpb.Bar
	start time.Time
	mu    sync.Mutex
	msg   string
	known bool // reported a total
}

// newBars draws on w; width is the terminal's (0 when unknown, as for
// --progress bars into a file), used only to size the bars.
func newBars(w io.Writer, width int) *bars {
	// On a terminal mpb lays lines out to its width; elsewhere (bars
	// forced into a file) to the container width given here.
	b := &bars{
		p: mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh(),
			mpb.WithWidth(120)),
		bars: map[string]*barState{}, start: time.Now(),
		barWidth: 30,
	}
	if width > 0 && width < 120 {
		b.barWidth = max(10, width/4)
	}
	b.overall = b.p.New(0, mpb.BarStyle().Lbound("[").Rbound("]"),
		mpb.BarPriority(math.MaxInt32), mpb.BarWidth(b.barWidth),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			b.mu.Lock()
			defer b.mu.Unlock()
			return fmt.Sprintf("stages %s", b.counts)
		}, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			return clock(time.Since(b.start))
		})),
	)
	return b
}

// SetCounts implements Counter.
func (b *bars) SetCounts(c Counts) {
	b.mu.Lock()
	b.counts = c
	closed := b.closed
	b.mu.Unlock()
	if closed || c.Total <= 0 {
		return
	}
	b.overall.SetTotal(int64(c.Total), false)
	b.overall.SetCurrent(int64(c.Done))
}

func (b *bars) Started(id string) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return
	}
	st := &barState{start: time.Now()}
	filler := mpb.BarStyle().Lbound("[").Rbound("]").Build()
	spinner := mpb.SpinnerStyle().PositionLeft().Build()
	bar, err := b.p.Add(0, mpb.BarFillerFunc(func(w io.Writer, s decor.Statistics) error {
		st.mu.Lock()
		known := st.known
		st.mu.Unlock()
		if known {
			return filler.Fill(w, s)
		}
		return spinner.Fill(w, s)
	}),
		mpb.BarWidth(b.barWidth),
		mpb.PrependDecorators(decor.Name(id, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.Any(func(s decor.Statistics) string {
				st.mu.Lock()
				defer st.mu.Unlock()
				out := clock(time.Since(st.start))
				if st.known && s.Total > 0 {
					out = fmt.Sprintf("%3.0f%% %s", 100*float64(s.Current)/float64(s.Total), out)
				}
				if st.msg != "" {
					out += " " + st.msg
				}
				return out
			}, decor.WCSyncSpace),
		),
		mpb.BarRemoveOnComplete(),
	)
	if err != nil {
		return // the container is shutting down
	}
	st.bar = bar
	b.mu.Lock()
	b.bars[id] = st
	b.mu.Unlock()
}

func (b *bars) Progress(id string, done, total float64, msg string) {
	b.mu.Lock()
	st := b.bars[id]
	b.mu.Unlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	st.msg = msg
	if total > 0 {
		st.known = true
	}
	st.mu.Unlock()
	if total <= 0 {
		return
	}
	st.bar.SetTotal(int64(total*scale), false)
	st.bar.SetCurrent(int64(math.Min(done, total) * scale))
}

func (b *bars) Finished(id string, d time.Duration, err error) {
	b.mu.Lock()
	st := b.bars[id]
	delete(b.bars, id)
	b.mu.Unlock()
	if st != nil {
		if err != nil {
			st.bar.Abort(true)
		} else {
			// Complete at full: the bar leaves the region filled, not cut.
			st.bar.SetTotal(-1, true)
		}
	}
	// Successes are in the run's summary; a failure must be seen now.
	if err != nil {
		b.Printf("%s %s", id, outcome(d, err))
	}
}

func (b *bars) Printf(format string, args ...any) {
	fmt.Fprintf(b.p, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

func (b *bars) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	left := make([]*barState, 0, len(b.bars))
	for id, st := range b.bars {
		left = append(left, st)
		delete(b.bars, id)
	}
	c := b.counts
	b.mu.Unlock()
	for _, st := range left {
		st.bar.Abort(true)
	}
	// The counter stays on screen as the region's last word.
	if c.Total > 0 && c.Done == c.Total {
		b.overall.SetTotal(int64(c.Total), true)
	} else {
		if c.Total > 0 {
			b.overall.SetTotal(int64(c.Total), false)
			b.overall.SetCurrent(int64(c.Done))
		}
		b.overall.Abort(false)
	}
	b.p.Wait()
}

// clock is an elapsed time that ticks in whole seconds: 0s, 42s, 3m05s,
// 1h02m.
func clock(d time.Duration) string {
	d = d.Truncate(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
