package slurm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// Defaults of executor.slurm.
const (
	DefaultPoll    = 5 * time.Second
	DefaultRetries = 2
)

// Config is what a Launcher needs.
type Config struct {
	Store *store.Store
	Plan  *plan.Plan
	// Self is this gsim binary, for stages that run here; Gsim the binary
	// the jobs run (the plan's executor.slurm.gsim, else Self).
	Self string
	// Runner runs the Slurm commands; nil runs the real ones.
	Runner Runner
	// Printf writes a progress line (the executor's display).
	Printf func(format string, args ...any)
	// LocalJobs bounds the stages running here at once; LocalGPUs the GPU
	// stages among them (a stage made local with resources.job: false).
	LocalJobs, LocalGPUs int
}

// Launcher runs stage attempts as Slurm jobs (or here, for the stages that
// are not jobs). It implements executor.Launcher and executor.Resumer.
type Launcher struct {
	st       *store.Store
	cfg      plan.Slurm
	self     string
	gsim     string
	retries  int
	printf   func(string, ...any)
	stageRes map[string]plan.Resources
	c        *Client
	poll     *poller
	local    chan struct{}
	gpus     chan struct{}
	stop     context.CancelFunc
	stopped  chan struct{}

	mu        sync.Mutex
	active    map[string]*active // job id -> what follows it
	done      map[string]int     // stage -> jobs that succeeded in this run
	failed    map[string]int     // stage -> jobs that ended otherwise
	submitted int
	resubmits int
	followed  int
	lastLine  string
	lastPrint time.Time

	cmu     sync.Mutex
	pending *cancelBatch
}

type active struct {
	stage, instance string
	staging         string
	env             stage.Env
	state           JobState
	offset          int64 // how far stage.log has been read for progress lines
}

type cancelBatch struct {
	ids  []string
	done chan struct{}
	err  error
}

// New makes a Launcher and starts following jobs; Close stops it.
func New(cfg Config) (*Launcher, error) {
	if cfg.Store == nil || cfg.Plan == nil {
		return nil, errors.New("slurm: a launcher needs a store and a plan")
	}
	r := cfg.Runner
	if r == nil {
		r = Exec{}
	}
	l := &Launcher{
		st: cfg.Store, cfg: cfg.Plan.Slurm, self: cfg.Self, gsim: cfg.Plan.Slurm.Gsim,
		retries: DefaultRetries, printf: cfg.Printf, stageRes: map[string]plan.Resources{},
		c: NewClient(r), active: map[string]*active{}, done: map[string]int{}, failed: map[string]int{},
		stopped: make(chan struct{}),
	}
	if l.gsim == "" {
		l.gsim = cfg.Self
	}
	if l.gsim == "" {
		return nil, errors.New("slurm: the gsim binary for the jobs is unknown; set executor.slurm.gsim")
	}
	if cfg.Plan.Slurm.Retries != nil {
		l.retries = *cfg.Plan.Slurm.Retries
	}
	if l.printf == nil {
		l.printf = func(string, ...any) {}
	}
	for _, in := range cfg.Plan.Instances {
		l.stageRes[in.Stage] = in.Resources
	}
	n, g := cfg.LocalJobs, cfg.LocalGPUs
	if n < 1 {
		n = 1
	}
	if g < 1 {
		g = 1
	}
	l.local, l.gpus = make(chan struct{}, n), make(chan struct{}, g)
	every := cfg.Plan.Slurm.Poll
	if every <= 0 {
		every = DefaultPoll
	}
	l.poll = newPoller(l.c, every, l.printf)
	l.poll.after = l.tick
	ctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	go func() {
		defer close(l.stopped)
		l.poll.run(ctx)
	}()
	return l, nil
}

// Client is the launcher's command client (for its counts).
func (l *Launcher) Client() *Client { return l.c }

// Close stops following jobs and returns a one-line account of what the
// run asked of Slurm ("" when nothing).
func (l *Launcher) Close() string {
	l.stop()
	<-l.stopped
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.c.Counts()) == 0 {
		return "" // nothing was asked of Slurm: nothing to say
	}
	s := fmt.Sprintf("slurm: %d jobs submitted", l.submitted)
	if l.resubmits > 0 {
		s += fmt.Sprintf(" (%d of them resubmissions after a preemption or node failure)", l.resubmits)
	}
	if l.followed > 0 {
		s += fmt.Sprintf(", %d followed from an earlier gsim", l.followed)
	}
	return s + "; commands: " + l.c.CountsText()
}

// Request says where spec's instance runs and what its job asks for.
func (l *Launcher) Request(k stage.Kind, spec *stage.Spec) Request {
	return Resolve(k.Resources(spec.Params)["gpu"], l.stageRes[spec.Stage], l.cfg)
}

// Launch runs one attempt: as a job, or here.
func (l *Launcher) Launch(ctx context.Context, k stage.Kind, spec *stage.Spec, specPath string, env stage.Env) error {
	req := l.Request(k, spec)
	if !req.Job {
		return l.runLocal(ctx, spec, specPath, env, req)
	}
	return l.runJob(ctx, spec, env, req)
}

func (l *Launcher) runLocal(ctx context.Context, spec *stage.Spec, specPath string, env stage.Env, req Request) error {
	sems := []chan struct{}{l.local}
	if req.GPUs > 0 {
		sems = append(sems, l.gpus)
	}
	for _, s := range sems {
		select {
		case s <- struct{}{}:
			defer func(s chan struct{}) { <-s }(s)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return stage.RunCommand(ctx, stage.Command{Argv: []string{l.self, "stage", "exec", specPath}, Dir: spec.OutDir}, env)
}

// Resumable hands the executor the folder of key's job, if a record says
// one was submitted and its folder is still there.
func (l *Launcher) Resumable(key string) string {
	rec, err := l.st.ReadJob(key)
	if err != nil || rec == nil || rec.System != "slurm" {
		return ""
	}
	dir := l.st.JobStaging(rec)
	fi, err := os.Stat(filepath.Join(dir, store.SpecFile))
	if err != nil || fi.IsDir() {
		// Nothing can adopt what such a job writes.
		_ = l.st.RemoveJob(key)
		if rec.ID != "" {
			l.printf("%s: forgetting Slurm job %s: its attempt folder %s is gone", rec.Instance, rec.ID, dir)
		}
		return ""
	}
	return dir
}

// Settled drops the record of an attempt the executor committed or kept as
// failed.
func (l *Launcher) Settled(key, staging string) {
	if rec, err := l.st.ReadJob(key); err == nil && rec != nil && l.st.JobStaging(rec) == staging {
		_ = l.st.RemoveJob(key)
	}
}

// JobError is a job that did not succeed.
type JobError struct {
	State JobState
	// Resubmissions after preemption or node failure before this end.
	Resubmissions int
}

func (e *JobError) Error() string {
	s := e.State.Describe()
	if e.Resubmissions > 0 {
		s += fmt.Sprintf(" (after %d resubmissions)", e.Resubmissions)
	}
	return s
}

func (l *Launcher) runJob(ctx context.Context, spec *stage.Spec, env stage.Env, req Request) error {
	rec, err := l.st.ReadJob(spec.Key)
	if err != nil {
		return err
	}
	id := ""
	if rec != nil && l.st.JobStaging(rec) == spec.OutDir {
		if rec.ID == "" {
			// The gsim that wrote the record died around sbatch.
			st, ok, err := l.c.Find(ctx, rec.Name)
			if err != nil {
				return fmt.Errorf("looking for job %s, submitted by a gsim that died: %w", rec.Name, err)
			}
			if ok {
				rec.ID = st.ID
				if err := l.st.WriteJob(rec); err != nil {
					return err
				}
			}
		}
		if rec.ID != "" {
			id = rec.ID
			l.mu.Lock()
			l.followed++
			l.mu.Unlock()
			l.printf("%s: following Slurm job %s, submitted %s by gsim %d on %s", spec.Instance, id,
				rec.Submitted.Local().Format("2006-01-02 15:04:05"), rec.PID, rec.Host)
			fmt.Fprintf(env.Log, "gsim: following Slurm job %s, submitted by an earlier gsim\n", id)
		}
	} else {
		host, _ := os.Hostname()
		rec = &store.Job{Key: spec.Key, Instance: spec.Instance, Experiment: spec.Experiment, System: "slurm",
			Staging: spec.OutDir, Attempt: 1, Host: host, PID: os.Getpid()}
	}
	if id == "" {
		if id, err = l.submit(ctx, spec, req, rec); err != nil {
			return err
		}
	}
	for {
		st, err := l.wait(ctx, id, spec, env)
		if err != nil {
			return err
		}
		if st.ExitCode < 0 {
			// squeue does not say the exit code; the job script wrote it.
			if f := exitFileState(id, spec.OutDir); f.State != Vanished {
				st.ExitCode = f.ExitCode
			}
		}
		fmt.Fprintf(env.Log, "gsim: %s\n", st.Describe())
		if st.Succeeded() {
			if err := os.Remove(filepath.Join(spec.OutDir, ExitFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		if st.Retryable() && rec.Attempt <= l.retries {
			l.printf("%s: %s; submitting it again (resubmission %d of at most %d)", spec.Instance, st.Describe(), rec.Attempt, l.retries)
			rec.Previous = append(rec.Previous, id)
			rec.Attempt++
			l.mu.Lock()
			l.resubmits++
			l.mu.Unlock()
			if id, err = l.submit(ctx, spec, req, rec); err != nil {
				return err
			}
			continue
		}
		os.Remove(filepath.Join(spec.OutDir, ExitFile))
		return &JobError{State: st, Resubmissions: rec.Attempt - 1}
	}
}

// submit records the attempt, submits it and records the job id. The
// record is written first: a gsim killed inside sbatch leaves a record
// whose unique job name finds the job.
func (l *Launcher) submit(ctx context.Context, spec *stage.Spec, req Request, rec *store.Job) (string, error) {
	var nonce [3]byte
	_, _ = rand.Read(nonce[:])
	rec.Name, rec.ID, rec.Submitted = jobName(spec, hex.EncodeToString(nonce[:])), "", time.Now().UTC()
	if err := l.st.WriteJob(rec); err != nil {
		return "", err
	}
	id, err := l.sbatch(ctx, req.SbatchArgs(rec.Name, spec.OutDir), jobScript(l.gsim, spec), rec.Name)
	if err != nil {
		_ = l.st.RemoveJob(spec.Key)
		return "", fmt.Errorf("sbatch refused the job: %w", err)
	}
	rec.ID = id
	if err := l.st.WriteJob(rec); err != nil {
		// Unrecorded, a later gsim could not follow it: better cancel it.
		_ = l.c.Cancel(context.WithoutCancel(ctx), []string{id})
		return "", err
	}
	l.mu.Lock()
	l.submitted++
	l.mu.Unlock()
	what := req.Describe()
	if what != "" {
		what = " (" + what + ")"
	}
	l.printf("%s: submitted as Slurm job %s%s", spec.Instance, id, what)
	return id, nil
}

// sbatch submits a job named name, trying again a few times when the
// controller does not answer. A failure without an answer may hide a
// submission that got through (the reply was lost), so the job is looked up
// by its unique name before each new try: it is never submitted twice.
func (l *Launcher) sbatch(ctx context.Context, args []string, script, name string) (string, error) {
	wait := time.Second
	for try := 1; ; try++ {
		id, err := l.c.Submit(ctx, args, script)
		if err == nil || !Transient(err) {
			return id, err
		}
		if st, ok, ferr := l.c.Find(context.WithoutCancel(ctx), name); ferr == nil && ok {
			return st.ID, nil
		}
		if try == 4 {
			return "", err
		}
		l.printf("sbatch failed (%v); trying again in %s", err, wait)
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(wait):
		}
		wait *= 3
	}
}

// wait follows job id until it ends, or until ctx ends (then it cancels the
// job and returns ctx's error).
func (l *Launcher) wait(ctx context.Context, id string, spec *stage.Spec, env stage.Env) (JobState, error) {
	a := &active{stage: spec.Stage, instance: spec.Instance, staging: spec.OutDir, env: env}
	if fi, err := os.Stat(filepath.Join(spec.OutDir, store.LogFile)); err == nil {
		a.offset = fi.Size()
	}
	l.mu.Lock()
	l.active[id] = a
	l.mu.Unlock()
	t := l.poll.watch(id, spec.OutDir, func(st JobState) { l.changed(id, a, st) })
	defer func() {
		l.poll.forget(id)
		l.mu.Lock()
		delete(l.active, id)
		l.mu.Unlock()
	}()
	select {
	case <-t.done:
		return t.state, nil
	case <-ctx.Done():
		if err := l.cancel(id); err != nil {
			l.printf("could not cancel Slurm job %s (%v): cancel it with scancel %s", id, err, id)
		} else {
			_ = l.st.RemoveJob(spec.Key)
		}
		return JobState{}, ctx.Err()
	}
}

// changed hears a job's new state from the poller.
func (l *Launcher) changed(id string, a *active, st JobState) {
	l.mu.Lock()
	prev := a.state
	a.state = st
	switch {
	case st.Succeeded():
		l.done[a.stage]++
	case st.Terminal() && !st.Retryable():
		l.failed[a.stage]++
	}
	l.mu.Unlock()
	if st.State == "RUNNING" && prev.State != "RUNNING" {
		l.printf("%s: Slurm job %s running on %s", a.instance, id, st.Node)
	}
}

// tick runs after every poll: it forwards the progress lines running jobs
// wrote to their logs, and prints the queue counts when they changed.
func (l *Launcher) tick() {
	l.mu.Lock()
	var running []*active
	for _, a := range l.active {
		if a.state.State == "RUNNING" {
			running = append(running, a)
		}
	}
	l.mu.Unlock()
	for _, a := range running {
		l.forwardProgress(a)
	}
	line := l.countsLine()
	l.mu.Lock()
	show := line != l.lastLine && (time.Since(l.lastPrint) >= 10*time.Second || l.lastLine == "")
	if show {
		l.lastLine, l.lastPrint = line, time.Now()
	}
	l.mu.Unlock()
	if show && line != "" {
		l.printf("%s", line)
	}
}

// countsLine is "slurm jobs: real 2 queued, 1 running, 3 done; profile 1 running".
func (l *Launcher) countsLine() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	type counts struct{ queued, running, done, failed int }
	per := map[string]*counts{}
	get := func(s string) *counts {
		if per[s] == nil {
			per[s] = &counts{}
		}
		return per[s]
	}
	for _, a := range l.active {
		switch {
		case a.state.State == "RUNNING" || a.state.State == "COMPLETING":
			get(a.stage).running++
		case !a.state.Terminal():
			get(a.stage).queued++
		}
	}
	for s, n := range l.done {
		get(s).done += n
	}
	for s, n := range l.failed {
		get(s).failed += n
	}
	if len(per) == 0 {
		return ""
	}
	stages := make([]string, 0, len(per))
	for s := range per {
		stages = append(stages, s)
	}
	sort.Strings(stages)
	parts := make([]string, len(stages))
	for i, s := range stages {
		c := per[s]
		var w []string
		for _, x := range []struct {
			n    int
			word string
		}{{c.queued, "queued"}, {c.running, "running"}, {c.done, "done"}, {c.failed, "failed"}} {
			if x.n > 0 {
				w = append(w, fmt.Sprintf("%d %s", x.n, x.word))
			}
		}
		parts[i] = s + " " + strings.Join(w, ", ")
	}
	return "slurm jobs: " + strings.Join(parts, "; ")
}

// forwardProgress reads what a running job appended to its log since the
// last look and reports its last progress line.
func (l *Launcher) forwardProgress(a *active) {
	f, err := os.Open(filepath.Join(a.staging, store.LogFile))
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= a.offset {
		return
	}
	const most = 1 << 20 // a chatty stage's log need not be read whole
	from := a.offset
	if fi.Size()-from > most {
		from = fi.Size() - most
	}
	buf := make([]byte, fi.Size()-from)
	n, _ := f.ReadAt(buf, from)
	buf = buf[:n]
	// Only whole lines: the next look reads the rest.
	end := strings.LastIndexByte(string(buf), '\n')
	if end < 0 {
		return
	}
	a.offset = from + int64(end) + 1
	lines := strings.Split(string(buf[:end]), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if done, total, msg, ok := stage.ParseProgress(lines[i]); ok {
			a.env.Report(done, total, msg)
			return
		}
	}
}

// cancel cancels job id together with every job whose cancellation is
// asked within the next moment: an interrupted run cancels all its jobs
// with one scancel. It returns once that scancel has run.
func (l *Launcher) cancel(id string) error {
	l.cmu.Lock()
	b := l.pending
	if b == nil {
		b = &cancelBatch{done: make(chan struct{})}
		l.pending = b
		time.AfterFunc(200*time.Millisecond, func() {
			l.cmu.Lock()
			l.pending = nil
			ids := b.ids
			l.cmu.Unlock()
			b.err = l.c.Cancel(context.Background(), ids)
			if b.err == nil {
				l.printf("cancelled Slurm jobs %s", strings.Join(ids, " "))
			}
			close(b.done)
		})
	}
	b.ids = append(b.ids, id)
	l.cmu.Unlock()
	<-b.done
	return b.err
}
