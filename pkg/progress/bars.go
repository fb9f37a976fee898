package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// scale turns fractional progress into the integer counts mpb wants.
const scale = 1000

type bars struct {
	mu   sync.Mutex
	p    *mpb.Progress
	bars map[string]*barState
}

type barState struct {
	bar *mpb.Bar
	msg string
}

func newBars(w io.Writer) *bars {
	return &bars{
		p:    mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond)),
		bars: map[string]*barState{},
	}
}

func (b *bars) Started(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := &barState{}
	st.bar = b.p.AddBar(0,
		mpb.PrependDecorators(decor.Name(id, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace),
			decor.Any(func(decor.Statistics) string {
				b.mu.Lock()
				defer b.mu.Unlock()
				if st.msg == "" {
					return ""
				}
				return " " + st.msg
			}),
		),
		mpb.BarRemoveOnComplete(),
	)
	b.bars[id] = st
}

func (b *bars) Progress(id string, done, total float64, msg string) {
	b.mu.Lock()
	st := b.bars[id]
	if st != nil {
		st.msg = msg
	}
	b.mu.Unlock()
	if st == nil {
		return
	}
	if total > 0 {
		st.bar.SetTotal(int64(total*scale), false)
		st.bar.SetCurrent(int64(done * scale))
	}
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
			st.bar.SetTotal(-1, true)
		}
	}
	b.Printf("%s %s", id, outcome(d, err))
}

func (b *bars) Printf(format string, args ...any) {
	fmt.Fprintf(b.p, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

func (b *bars) Close() {
	b.mu.Lock()
	for id, st := range b.bars {
		st.bar.Abort(true)
		delete(b.bars, id)
	}
	b.mu.Unlock()
	b.p.Wait()
}
