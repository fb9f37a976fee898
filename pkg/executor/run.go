package executor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/progress"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

type result struct {
	n       *node
	outcome Outcome
	err     error
	dur     time.Duration
	digest  string
	logPath string
}

// Run executes the out-of-date instances of p. The summary is complete even
// when the error is not nil; the error wraps ErrStagesFailed when any stage
// failed and is a *UsageError when the request itself is wrong.
func Run(ctx context.Context, p *plan.Plan, opt Options) (*Summary, error) {
	start := time.Now()
	g, err := newGraph(p, &opt)
	if err != nil {
		return nil, err
	}
	if err := preflight(ctx, p, g, &opt); err != nil {
		return nil, err
	}
	// A clean meanwhile must not remove the objects this run commits or
	// reads: it removes only dead staging folders while a run holds this.
	use, err := opt.Store.Use(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &InterruptedError{Cause: ctx.Err()}
		}
		return nil, err
	}
	defer use.Unlock()
	useCaches(p, opt.Store)
	disp := opt.display()
	if n := EndOrphans(opt.Store, false); n > 0 {
		disp.Printf("ended %d process(es) left running by killed gsim runs", n)
	}
	sum := &Summary{}
	entries := map[*node]*Entry{}
	record := func(n *node, e Entry) {
		e.ID = n.inst.ID
		e.Key = n.key
		entries[n] = &e
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result)
	used := map[string]int{}
	nRunning := 0
	stopping := false
	var stageErrs []error

	// Every instance whose inputs are up to date is decided up front, several
	// at once, and linked if it is up to date too.
	pre := g.decideAll(&opt, false, func(n *node, d Decision) {
		if !d.Run && d.Err == nil {
			if err := opt.Store.Link(p.Name, n.inst.ID, n.key); err != nil {
				disp.Printf("warning: %v", err)
			}
		}
	})
	for n, d := range pre {
		if !d.Run && d.Err == nil {
			record(n, Entry{Outcome: UpToDateRun})
			delete(pre, n)
		}
	}
	fits := func(n *node) bool {
		for r, k := range n.resources {
			if used[r]+k > opt.capacity(r) {
				return false
			}
		}
		return true
	}
	for {
		for _, n := range g.nodes {
			if !n.selected || n.state != pending {
				continue
			}
			if root := g.failedUpstream(n); root != "" {
				n.state, n.root = skipped, root
				why := "failed"
				if e := entries[g.byID[root]]; e != nil && e.Outcome == Cancelled {
					why = e.Reason // an interrupted upstream did not fail
				}
				record(n, Entry{Outcome: Skipped, Reason: fmt.Sprintf("upstream %s %s", root, why)})
				continue
			}
			if g.upstreamPending(n) != nil {
				continue
			}
			if stopping || ctx.Err() != nil {
				n.state, n.root = skipped, ""
				record(n, Entry{Outcome: NotRun, Reason: stopReason(ctx)})
				continue
			}
			// Decided once: an instance waiting for a job or a slot is not
			// checked (or, with Verify, rehashed) again each time another
			// finishes; runNode checks again under the key's lock.
			d, predecided := pre[n]
			if predecided || !n.decided {
				if predecided {
					delete(pre, n)
				} else {
					d = g.decide(n, &opt)
					if !d.Run && d.Err == nil {
						if err := opt.Store.Link(p.Name, n.inst.ID, n.key); err != nil {
							disp.Printf("warning: %v", err)
						}
					}
				}
				switch {
				case d.Err != nil:
					n.state, n.root = failed, n.inst.ID
					se := &StageError{Instance: n.inst.ID, Err: d.Err}
					stageErrs = append(stageErrs, se)
					record(n, Entry{Outcome: FailedOutcome, Err: se})
					if !opt.KeepGoing {
						stopping = true
						cancel()
					}
					continue
				case !d.Run:
					record(n, Entry{Outcome: UpToDateRun})
					continue
				case d.State == Corrupt:
					disp.Printf("%s corrupt (%s): rerunning", n.inst.ID, d.Detail)
				}
			}
			if nRunning >= opt.jobs() || !fits(n) {
				continue
			}
			for r, k := range n.resources {
				used[r] += k
			}
			nRunning++
			n.state = running
			go func(n *node) {
				results <- g.runNode(runCtx, n, &opt)
			}(n)
		}
		progress.SetCounts(disp, g.counts(nRunning))
		if nRunning == 0 {
			break
		}
		r := <-results
		nRunning--
		for res, k := range r.n.resources {
			used[res] -= k
		}
		n := r.n
		if r.err == nil {
			n.state, n.digest = done, r.digest
			record(n, Entry{Outcome: r.outcome, Duration: r.dur})
			if r.outcome == Ran {
				// Counts first, so the display's line for this instance
				// carries the count it makes.
				progress.SetCounts(disp, g.counts(nRunning))
				disp.Finished(n.inst.ID, r.dur, nil)
			}
			continue
		}
		n.state, n.root = failed, n.inst.ID
		progress.SetCounts(disp, g.counts(nRunning))
		disp.Finished(n.inst.ID, r.dur, r.err)
		if ctx.Err() != nil {
			stopping = true
		}
		if stopping && errors.Is(r.err, context.Canceled) {
			why := "killed after another stage failed"
			if ctx.Err() != nil {
				why = "interrupted"
			}
			record(n, Entry{Outcome: Cancelled, Duration: r.dur, Reason: why})
			continue
		}
		se := stageError(n, r)
		stageErrs = append(stageErrs, se)
		record(n, Entry{Outcome: FailedOutcome, Duration: r.dur, Err: se, LogPath: r.logPath})
		if !opt.KeepGoing && !stopping {
			stopping = true
			cancel()
		}
	}
	_ = opt.Store.SaveTrust()
	for _, n := range g.nodes {
		if n.selected && n.state == pending {
			record(n, Entry{Outcome: NotRun, Reason: stopReason(ctx)})
		}
		if e := entries[n]; e != nil {
			sum.Entries = append(sum.Entries, *e)
		}
	}
	sum.Elapsed = time.Since(start)
	if ctx.Err() != nil {
		return sum, &InterruptedError{Cause: ctx.Err()}
	}
	if len(stageErrs) > 0 {
		return sum, fmt.Errorf("%w:\n%w", ErrStagesFailed, errors.Join(stageErrs...))
	}
	return sum, nil
}

// counts is where the run stands, for the display's overall counter.
func (g *graph) counts(running int) progress.Counts {
	var c progress.Counts
	for _, n := range g.nodes {
		if !n.selected {
			continue
		}
		c.Total++
		switch n.state {
		case done:
			c.Done++
		case failed:
			c.Failed++
		case skipped:
			c.Skipped++
		}
	}
	c.Running = running
	return c
}

// InterruptedError is a run stopped by a signal (Ctrl-C) or a cancelled
// context. It says what is kept, in the user's words, rather than Go's
// "context canceled"; errors.Is still finds the cause.
type InterruptedError struct{ Cause error }

func (e *InterruptedError) Error() string {
	return "run interrupted: finished stages are kept, unfinished attempts are discarded; run the same command again to go on"
}

func (e *InterruptedError) Unwrap() error { return e.Cause }

func stopReason(ctx context.Context) string {
	if ctx.Err() != nil {
		return "run interrupted"
	}
	return "run stopped after a failure"
}

// failedUpstream names the failed instance behind a failed or skipped input.
func (g *graph) failedUpstream(n *node) string {
	for _, d := range n.inst.Needs {
		for _, id := range d.Instances {
			up := g.byID[id]
			if up.state == failed || up.state == skipped && up.root != "" {
				return up.root
			}
		}
	}
	return ""
}

// runNode makes one attempt at n under its key lock.
func (g *graph) runNode(ctx context.Context, n *node, opt *Options) result {
	disp := opt.display()
	start := time.Now()
	res := result{n: n}
	lock, waited, err := opt.Store.Lock(ctx, n.key, func() {
		disp.Printf("waiting for another gsim running %s", n.inst.ID)
	})
	if err != nil {
		res.err, res.dur = err, time.Since(start)
		return res
	}
	defer lock.Unlock()
	// Another process (or an instance with the same key) may have finished
	// it while we waited; a forced rerun that had to wait is satisfied by a
	// new object, not by the one it replaces (the lock's holder may have
	// been a clean or a status, which make none).
	if waited || !n.mustRun {
		if c := opt.Store.Check(n.key); c.Complete && (!n.mustRun || !sameObject(c.Manifest, n.stale)) {
			res.outcome, res.digest, res.dur = Reused, c.Manifest.OutputDigest, time.Since(start)
			if err := opt.Store.Link(g.p.Name, n.inst.ID, n.key); err != nil {
				disp.Printf("warning: %v", err)
			}
			return res
		}
	}
	staging, _, err := g.newStaging(n, opt)
	if err != nil {
		res.err, res.dur = err, time.Since(start)
		return res
	}
	spec := g.spec(n, opt.Store, staging)
	release, held, runErr := acquireSlots(ctx, opt.SlotDir, n.resources, opt.capacity, opt.devices, func(r string) {
		disp.Printf("%s waits for a %s slot another gsim holds", n.inst.ID, r)
	})
	if runErr == nil {
		disp.Started(n.inst.ID)
		runErr = g.attempt(ctx, n, spec, opt, held["gpu"])
	}
	release()
	res.dur = time.Since(start)
	if runErr == nil {
		m := &store.Manifest{
			Key: n.key, Kind: n.kind.Name(), Version: n.kind.Version(), Instance: n.inst.ID,
			Experiment: g.p.Name, Params: n.inst.Params, Fingerprint: n.keyIn.Fingerprint,
			Inputs: n.keyIn.Inputs, StartedAt: start.UTC(), EndedAt: time.Now().UTC(),
			DurationS: res.dur.Seconds(), Host: hostname(), GsimVersion: opt.GsimVersion,
		}
		if v, ok := n.kind.(stage.Volatile); ok {
			m.Volatile = v.VolatileFiles()
		}
		if runErr = opt.Store.Commit(staging, m); runErr == nil {
			settled(n, opt, staging)
			res.outcome, res.digest = Ran, m.OutputDigest
			if err := opt.Store.Link(g.p.Name, n.inst.ID, n.key); err != nil {
				disp.Printf("warning: %v", err)
			}
			_ = opt.Store.ClearFailed(n.key)
			return res
		}
	}
	if ctx.Err() != nil {
		// A killed attempt says nothing about the stage: drop it rather than
		// report it as failed.
		os.RemoveAll(staging)
		res.err = fmt.Errorf("%s: %w", n.inst.ID, ctx.Err())
		return res
	}
	// The log already holds the command's own output; say only how it ended.
	why := runErr.Error()
	var ee *stage.ExitError
	if errors.As(runErr, &ee) {
		why = fmt.Sprintf("command exited with code %d", ee.ExitCode)
	}
	appendLog(filepath.Join(staging, store.LogFile), fmt.Sprintf("gsim: %s failed: %s\n", n.inst.ID, why))
	res.err = runErr
	res.logPath = filepath.Join(staging, store.LogFile)
	if dir, err := opt.Store.Fail(staging, n.key); err == nil {
		res.logPath = filepath.Join(dir, store.LogFile)
		settled(n, opt, staging)
	}
	return res
}

// sameObject tells whether two manifests describe one commit.
func sameObject(a, b *store.Manifest) bool {
	return a != nil && b != nil && a.Key == b.Key && a.OutputDigest == b.OutputDigest &&
		a.StartedAt.Equal(b.StartedAt) && a.EndedAt.Equal(b.EndedAt) && a.Host == b.Host
}

// attempt runs the kind into spec.OutDir and validates what it wrote.
// gpus are the devices the attempt holds (nil: none, or counter slots).
func (g *graph) attempt(ctx context.Context, n *node, spec *stage.Spec, opt *Options, gpus []string) (err error) {
	specPath := filepath.Join(spec.OutDir, store.SpecFile)
	if err := writeSpec(specPath, spec); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(spec.OutDir, store.LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	log := &lockedWriter{w: logf}
	fmt.Fprintf(log, "gsim: %s (kind %s, key %s) started %s\n", n.inst.ID, n.inst.Kind, n.key, time.Now().UTC().Format(time.RFC3339))
	env := stage.Env{
		Log:      log,
		Progress: func(done, total float64, msg string) { opt.display().Progress(n.inst.ID, done, total, msg) },
		Gsim:     opt.Gsim,
		Tag:      attemptTag(opt.Store, n.key),
		GPUs:     gpus,
	}
	if len(gpus) > 0 {
		fmt.Fprintf(log, "gsim: on GPU %s (CUDA_VISIBLE_DEVICES=%s)\n", strings.Join(gpus, ","), strings.Join(gpus, ","))
	}
	// We hold the key's lock, so processes still tagged with it belong to an
	// attempt whose gsim was killed (meanwhile: the run's start ended older
	// ones), which left its staging folder: end them before starting anew (a
	// stray GPU bench would otherwise share the GPU with this one).
	if otherAttempts(opt.Store, n.key, spec.OutDir) {
		if k := stage.KillTagged(env.Tag); k > 0 {
			fmt.Fprintf(log, "gsim: ended %d process(es) left by a killed earlier attempt\n", k)
		}
	}
	switch {
	case opt.Launcher != nil:
		err = opt.Launcher.Launch(ctx, n.kind, spec, specPath, env)
	case opt.Subprocess:
		if opt.Gsim == "" {
			return errors.New("subprocess execution needs the gsim binary path")
		}
		err = stage.RunCommand(ctx, stage.Command{Argv: []string{opt.Gsim, "stage", "exec", specPath}, Dir: spec.OutDir}, env)
	default:
		err = runKind(ctx, n.kind, spec, env)
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := n.kind.Validate(spec); err != nil {
		return fmt.Errorf("outputs rejected: %w", err)
	}
	return nil
}

// runKind runs a built-in kind in-process; a panic fails the stage, not the run.
func runKind(ctx context.Context, k stage.Kind, spec *stage.Spec, env stage.Env) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kind %s panicked: %v\n%s", k.Name(), r, debug.Stack())
		}
	}()
	return k.Run(ctx, spec, env)
}

// ExecSpec runs one stage from a spec file, for `gsim stage exec`: the kind
// writes into spec.OutDir, logs to log, prints progress lines in the
// external-runner protocol, and its outputs are validated.
func ExecSpec(ctx context.Context, reg *stage.Registry, specPath string, log *os.File, gsim string) error {
	spec, err := stage.ReadSpec(specPath)
	if err != nil {
		return err
	}
	k, ok := reg.Lookup(spec.Kind)
	if !ok {
		return &UsageError{fmt.Sprintf("%s: unknown kind %q (known: %s)", specPath, spec.Kind, strings.Join(reg.Names(), ", "))}
	}
	if err := k.CheckParams(spec.Params); err != nil {
		return fmt.Errorf("%s: %w", specPath, err)
	}
	w := &lockedWriter{w: log}
	env := stage.Env{
		Log: w,
		Progress: func(done, total float64, msg string) {
			fmt.Fprintf(w, "%s%g %g %s\n", stage.ProgressPrefix, done, total, msg)
		},
		Gsim: gsim,
	}
	if err := runKind(ctx, k, spec, env); err != nil {
		return err
	}
	return k.Validate(spec)
}

type lockedWriter struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func appendLog(path, s string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(s)
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// StageError is a failed instance, with what a user needs to act on it.
type StageError struct {
	Instance string
	Command  []string
	ExitCode int
	LogPath  string
	Tail     string
	Err      error
}

const tailLines = 12

func stageError(n *node, r result) *StageError {
	se := &StageError{Instance: n.inst.ID, LogPath: r.logPath, Err: r.err, ExitCode: -1}
	var ee *stage.ExitError
	if errors.As(r.err, &ee) {
		se.Command, se.ExitCode = ee.Command, ee.ExitCode
	}
	se.Tail = logTail(r.logPath, tailLines)
	return se
}

func (e *StageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stage %s failed: ", e.Instance)
	if e.Command != nil {
		fmt.Fprintf(&b, "command `%s` exited with code %d", shortCommand(e.Command), e.ExitCode)
	} else {
		b.WriteString(firstLine(e.Err.Error()))
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "\n  log: %s", e.LogPath)
	}
	if e.Tail != "" {
		b.WriteString("\n  last lines of the log:")
		for _, l := range strings.Split(e.Tail, "\n") {
			b.WriteString("\n    | " + l)
		}
	}
	return b.String()
}

func (e *StageError) Unwrap() error { return e.Err }

// shortCommand shows a command on one line: scripts are cut to their first
// line, since the stage's `run:` is in the experiment file anyway.
func shortCommand(argv []string) string {
	const max = 60
	out := make([]string, len(argv))
	for i, a := range argv {
		cut := firstLine(a)
		if len(cut) > max {
			cut = cut[:max]
		}
		if cut != a {
			cut += " …"
		}
		if cut == "" || strings.ContainsAny(cut, " \t'\"$;&|<>") {
			cut = "'" + strings.ReplaceAll(cut, "'", `'\''`) + "'"
		}
		out[i] = cut
	}
	return strings.Join(out, " ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
