package slurm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// poller follows every job of a run with one command per interval, however
// many jobs there are: squeue for all of them, or, on a tick where some
// have left squeue's memory, sacct for those. A job neither knows is judged
// by the exit file its script leaves in the attempt's folder.
type poller struct {
	c     *Client
	every time.Duration
	warn  func(format string, args ...any)
	// after runs after each poll, outside the lock (progress counts).
	after func()

	mu     sync.Mutex
	jobs   map[string]*tracked
	noAcct bool
	failed int // consecutive failed polls, for warnings
}

type tracked struct {
	id, staging string
	state       JobState
	seen        bool // squeue or sacct has answered for it at least once
	missing     bool // absent from the last squeue answer
	onChange    func(JobState)
	done        chan struct{}
}

func newPoller(c *Client, every time.Duration, warn func(string, ...any)) *poller {
	return &poller{c: c, every: every, warn: warn, jobs: map[string]*tracked{}}
}

// watch follows job id, whose script writes into staging; onChange hears
// every change of state (in the poller's goroutine).
func (p *poller) watch(id, staging string, onChange func(JobState)) *tracked {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &tracked{id: id, staging: staging, onChange: onChange, done: make(chan struct{}),
		state: JobState{ID: id, State: "SUBMITTED", ExitCode: -1, Signal: -1}}
	p.jobs[id] = t
	return t
}

func (p *poller) forget(id string) {
	p.mu.Lock()
	delete(p.jobs, id)
	p.mu.Unlock()
}

// live lists the ids of jobs not known to have ended.
func (p *poller) live() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id, t := range p.jobs {
		if !t.state.Terminal() {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// states returns a snapshot of every followed job's state.
func (p *poller) states() map[string]JobState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]JobState, len(p.jobs))
	for id, t := range p.jobs {
		out[id] = t.state
	}
	return out
}

// run polls until ctx ends.
func (p *poller) run(ctx context.Context) {
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.poll(ctx)
		if p.after != nil {
			p.after()
		}
	}
}

// poll issues at most one command.
func (p *poller) poll(ctx context.Context) {
	p.mu.Lock()
	var all, missing []string
	for id, t := range p.jobs {
		if t.state.Terminal() {
			continue
		}
		all = append(all, id)
		if t.missing {
			missing = append(missing, id)
		}
	}
	noAcct := p.noAcct
	p.mu.Unlock()
	if len(all) == 0 {
		return
	}
	sort.Strings(all)
	sort.Strings(missing)
	if len(missing) > 0 {
		if !noAcct {
			got, err := p.c.Accounting(ctx, missing)
			switch {
			case errors.Is(err, ErrNoAccounting):
				p.mu.Lock()
				p.noAcct = true
				p.mu.Unlock()
				p.warn("%v: jobs that have left squeue are judged by the exit file their script writes", err)
				p.update(nil, missing, false)
			case err != nil:
				p.failure(err)
			default:
				p.update(got, missing, false)
			}
			return
		}
		// Without accounting, the exit file is the only witness left;
		// reading it costs the controller nothing, so squeue still runs.
		p.update(nil, missing, false)
	}
	got, err := p.c.Queue(ctx, all)
	if err != nil {
		p.failure(err)
		return
	}
	p.update(got, all, true)
}

func (p *poller) failure(err error) {
	p.mu.Lock()
	p.failed++
	n := p.failed
	p.mu.Unlock()
	// Say it at once, then every tenth time: a controller that is down
	// for a while must not flood the display.
	if n == 1 || n%10 == 0 {
		p.warn("cannot ask Slurm how jobs are doing (%v); trying again every %s", err, p.every)
	}
}

// update applies an answer about asked. From squeue, an asked job that is
// absent has left its memory: it is marked missing for sacct to settle.
// From sacct (or with no answer at all), an absent job is judged by its
// exit file, or declared Vanished.
func (p *poller) update(got map[string]JobState, asked []string, fromSqueue bool) {
	type change struct {
		t  *tracked
		st JobState
	}
	var changes []change
	p.mu.Lock()
	p.failed = 0
	for _, id := range asked {
		t := p.jobs[id]
		if t == nil || t.state.Terminal() {
			continue
		}
		st, ok := got[id]
		switch {
		case ok:
			t.missing, t.seen = false, true
		case fromSqueue:
			t.missing = true
			continue
		default:
			st = exitFileState(id, t.staging)
		}
		if st.State != t.state.State || st.Reason != t.state.Reason || st.Node != t.state.Node {
			t.state = st
			changes = append(changes, change{t, st})
		}
	}
	p.mu.Unlock()
	for _, c := range changes {
		if c.t.onChange != nil {
			c.t.onChange(c.st)
		}
		if c.st.Terminal() {
			close(c.t.done)
		}
	}
}

// exitFileState judges a job Slurm no longer knows by the exit file its
// script wrote: written means the stage ran to its end.
func exitFileState(id, staging string) JobState {
	st := JobState{ID: id, State: Vanished, ExitCode: -1, Signal: -1}
	b, err := os.ReadFile(filepath.Join(staging, ExitFile))
	if err != nil {
		return st
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return st
	}
	st.ExitCode = code
	st.State = "COMPLETED"
	if code != 0 {
		st.State = "FAILED"
	}
	return st
}
