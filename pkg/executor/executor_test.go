package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/progress"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// fake writes "<value>" to out.txt after sleeping params.sleep_ms; it fails
// when params.fail is true and records each run's interval.
type fake struct {
	stage.Base
	mu    sync.Mutex
	spans map[string][2]time.Time
	runs  map[string]int
}

func newFake() *fake { return &fake{spans: map[string][2]time.Time{}, runs: map[string]int{}} }

func (*fake) Name() string    { return "fake" }
func (*fake) Version() string { return "1" }
func (*fake) Resources(p map[string]any) map[string]int {
	if g, ok := p["gpu"].(int); ok {
		return map[string]int{"gpu": g}
	}
	return nil
}
func (f *fake) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	start := time.Now()
	if ms, ok := spec.Params["sleep_ms"].(int); ok {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.spans[spec.Instance] = [2]time.Time{start, time.Now()}
	f.runs[spec.Instance]++
	f.mu.Unlock()
	if spec.Params["fail"] == true {
		fmt.Fprintln(env.Log, "something broke")
		return errors.New("boom")
	}
	var in []string
	for _, ins := range spec.Inputs {
		for _, i := range ins {
			b, _ := os.ReadFile(filepath.Join(i.Dir, "out.txt"))
			in = append(in, string(b))
		}
	}
	return os.WriteFile(filepath.Join(spec.OutDir, "out.txt"), []byte(fmt.Sprint(spec.Params["value"], in)), 0o644)
}

func (f *fake) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

func inst(id string, params map[string]any, needs ...string) *plan.Instance {
	in := &plan.Instance{ID: id, Stage: strings.Split(id, "[")[0], Kind: "fake", Params: params}
	for _, n := range needs {
		in.Needs = append(in.Needs, plan.Dep{Stage: strings.Split(n, "[")[0], Instances: []string{n}})
	}
	return in
}

func setup(t *testing.T) (*fake, Options) {
	f := newFake()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f, Options{Store: st, Registry: stage.NewRegistry(f), Jobs: 4}
}

func TestGPUSlotsNeverOverlap(t *testing.T) {
	f, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("a", map[string]any{"gpu": 1, "sleep_ms": 60, "value": 1}),
		inst("b", map[string]any{"gpu": 1, "sleep_ms": 60, "value": 2}),
		inst("c", map[string]any{"gpu": 1, "sleep_ms": 60, "value": 3}),
		inst("cpu", map[string]any{"sleep_ms": 60, "value": 4}),
	}}
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatal(err)
	}
	ids := []string{"a", "b", "c"}
	for i, x := range ids {
		for _, y := range ids[i+1:] {
			sx, sy := f.spans[x], f.spans[y]
			if sx[0].Before(sy[1]) && sy[0].Before(sx[1]) {
				t.Errorf("gpu stages %s and %s overlapped", x, y)
			}
		}
	}
	// The CPU stage is not held back by GPU slots.
	if c, a := f.spans["cpu"], f.spans["a"]; !(c[0].Before(a[1]) && a[0].Before(c[1])) {
		t.Log("cpu stage did not overlap the first gpu stage (allowed, but unexpected)")
	}
	opt.Slots = map[string]int{"gpu": 2}
	opt.Force = []string{"all"}
	f.spans = map[string][2]time.Time{}
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatal(err)
	}
	overlaps := 0
	for i, x := range ids {
		for _, y := range ids[i+1:] {
			sx, sy := f.spans[x], f.spans[y]
			if sx[0].Before(sy[1]) && sy[0].Before(sx[1]) {
				overlaps++
			}
		}
	}
	if overlaps == 0 {
		t.Error("with 2 gpu slots no two gpu stages overlapped")
	}
}

func TestResourceOverCapacityIsUsageError(t *testing.T) {
	_, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{inst("a", map[string]any{"gpu": 2})}}
	_, err := Run(context.Background(), p, opt)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--gpus 2") {
		t.Errorf("err = %v", err)
	}
}

func diamond() *plan.Plan {
	return &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("w", map[string]any{"value": "w"}),
		inst("x", map[string]any{"value": "x"}, "w"),
		inst("y", map[string]any{"value": "y"}, "w"),
		inst("z", map[string]any{"value": "z"}, "y"),
	}}
}

func TestSkipUpToDateAndStale(t *testing.T) {
	f, opt := setup(t)
	p := diamond()
	sum, err := Run(context.Background(), p, opt)
	if err != nil || sum.Count(Ran) != 4 {
		t.Fatalf("first run: %v %+v", err, sum)
	}
	sum, err = Run(context.Background(), p, opt)
	if err != nil || sum.Count(Ran) != 0 || sum.Count(UpToDateRun) != 4 {
		t.Fatalf("second run: %v %+v", err, sum)
	}
	p.Instances[2].Params = map[string]any{"value": "y2"}
	ds, err := Explain(p, opt)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range ds {
		got[d.ID] = d.DryRunLine() + " | " + d.StatusLine()
	}
	want := map[string]string{
		"w": "skip (up to date) | up-to-date",
		"x": "skip (up to date) | up-to-date",
		"y": "run (stale: param with.value y → y2) | stale (param with.value y → y2)",
		"z": "run (after upstream) | stale (upstream y is not up to date)",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
	sum, err = Run(context.Background(), p, opt)
	if err != nil || sum.Count(Ran) != 2 || f.count("y") != 2 || f.count("z") != 2 || f.count("x") != 1 {
		t.Fatalf("after change: %v %+v", err, sum)
	}
	// --only x runs x and its ancestor only.
	opt.Only, opt.Force = []string{"x"}, []string{"all"}
	sum, _ = Run(context.Background(), p, opt)
	if len(sum.Entries) != 2 || f.count("x") != 2 || f.count("w") != 2 || f.count("z") != 2 {
		t.Errorf("--only x: %+v", sum.Entries)
	}
}

func TestFailureStopsDependents(t *testing.T) {
	for _, keepGoing := range []bool{false, true} {
		t.Run(fmt.Sprint("keepGoing=", keepGoing), func(t *testing.T) {
			f, opt := setup(t)
			opt.KeepGoing, opt.Jobs = keepGoing, 1
			p := diamond()
			p.Instances[1].Params = map[string]any{"fail": true} // x fails
			p.Instances = append(p.Instances, inst("v", map[string]any{"value": "v"}, "x"))
			sum, err := Run(context.Background(), p, opt)
			if !errors.Is(err, ErrStagesFailed) {
				t.Fatalf("err = %v", err)
			}
			var se *StageError
			if !errors.As(err, &se) || se.Instance != "x" || !strings.Contains(err.Error(), "something broke") ||
				!strings.Contains(err.Error(), "failed/") {
				t.Errorf("error lacks instance, log path or tail: %v", err)
			}
			if f.count("v") != 0 {
				t.Error("dependent of a failed stage ran")
			}
			out := map[string]Outcome{}
			for _, e := range sum.Entries {
				out[e.ID] = e.Outcome
			}
			if out["v"] != Skipped {
				t.Errorf("v: %s", out["v"])
			}
			ranZ := f.count("z") == 1
			if keepGoing != ranZ {
				t.Errorf("keepGoing=%v but z ran=%v (%v)", keepGoing, ranZ, out)
			}
			if _, err := os.Stat(opt.Store.FailedLog(se.keyOf(sum))); err != nil {
				t.Errorf("failed log kept: %v", err)
			}
		})
	}
}

func TestInterrupt(t *testing.T) {
	f, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("slow", map[string]any{"value": "s", "sleep_ms": 10_000}),
		inst("after", map[string]any{"value": "a"}, "slow"),
	}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	sum, err := Run(ctx, p, opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	// It printed "run interrupted: context canceled".
	if msg := err.Error(); strings.Contains(msg, "context canceled") || !strings.Contains(msg, "run the same command again") {
		t.Errorf("message %q: want what is kept and what to do, not Go's context error", msg)
	}
	got := map[string]Entry{}
	for _, e := range sum.Entries {
		got[e.ID] = e
	}
	if got["slow"].Outcome != Cancelled {
		t.Errorf("slow: %+v", got["slow"])
	}
	// It said "upstream slow failed".
	if e := got["after"]; e.Outcome != Skipped || e.Reason != "upstream slow interrupted" {
		t.Errorf("after: %+v, want skipped because upstream slow was interrupted", e)
	}
	if f.count("after") != 0 {
		t.Error("a dependent of an interrupted stage ran")
	}
	if ents, _ := os.ReadDir(filepath.Join(opt.Store.Root, "staging")); len(ents) != 0 {
		t.Errorf("staging not cleaned after interrupt: %d entries", len(ents))
	}
}

func (e *StageError) keyOf(s *Summary) string {
	for _, en := range s.Entries {
		if en.ID == e.Instance {
			return en.Key
		}
	}
	return ""
}

func TestStaleReasons(t *testing.T) {
	old := &store.Manifest{Kind: "k", Version: "1",
		Fingerprint: map[string]string{"runner:x": "a", "file:t.csv": "1"},
		Params:      map[string]any{"arrival": map[string]any{"rate": 2.0}, "n": 1.0},
		Inputs:      []store.InputRef{{Need: "workload", Instance: "workload", Digest: "d1"}}}
	cur := store.KeyInput{Kind: "k", Version: "2",
		Fingerprint: map[string]string{"runner:x": "b", "file:t.csv": "2"},
		Params:      map[string]any{"arrival": map[string]any{"rate": 4}, "n": 1},
		Inputs:      []store.InputRef{{Need: "workload", Instance: "workload", Digest: "d2"}}}
	got := strings.Join(staleReasons(cur, old), "; ")
	want := "runner code changed; file:t.csv changed; param with.arrival.rate 2 → 4; input workload changed"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestSameKeyRunsOnce(t *testing.T) {
	f, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("a", map[string]any{"value": 1, "sleep_ms": 50}),
		inst("b", map[string]any{"value": 1, "sleep_ms": 50}),
	}}
	sum, err := Run(context.Background(), p, opt)
	if err != nil {
		t.Fatal(err)
	}
	if f.count("a")+f.count("b") != 1 || sum.Count(Ran) != 1 || sum.Count(Reused) != 1 {
		t.Errorf("identical instances: runs a=%d b=%d, %+v", f.count("a"), f.count("b"), sum.Entries)
	}
	for _, id := range []string{"a", "b"} {
		if k, ok := opt.Store.Linked("e", id); !ok || k != sum.Entries[0].Key {
			t.Errorf("%s not linked to the shared object", id)
		}
	}
}

type recordingLauncher struct{ specs []string }

func (l *recordingLauncher) Launch(ctx context.Context, k stage.Kind, spec *stage.Spec, specPath string, env stage.Env) error {
	got, err := stage.ReadSpec(specPath)
	if err != nil || got.Instance != spec.Instance || got.OutDir != spec.OutDir {
		return fmt.Errorf("spec.json does not match the spec: %v", err)
	}
	l.specs = append(l.specs, spec.Instance)
	return k.Run(ctx, spec, env)
}

func TestLauncher(t *testing.T) {
	f, opt := setup(t)
	l := &recordingLauncher{}
	opt.Launcher, opt.Jobs = l, 1
	p := diamond()
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatal(err)
	}
	if strings.Join(l.specs, ",") != "w,x,y,z" || f.count("z") != 1 {
		t.Errorf("launched %v", l.specs)
	}
	if k, ok := opt.Store.Linked("e", "z"); !ok || !opt.Store.Check(k).Complete {
		t.Error("launched output not adopted")
	}
}

// cleaningLauncher runs `gsim clean` from inside the run, just before
// instance at, having removed w's link as if w were committed but not yet
// linked (the window between Commit and Link).
type cleaningLauncher struct {
	st  *store.Store
	at  string
	rep *store.CleanReport
}

func (l *cleaningLauncher) Launch(ctx context.Context, k stage.Kind, spec *stage.Spec, specPath string, env stage.Env) error {
	if spec.Instance == l.at {
		if err := os.Remove(filepath.Join(l.st.LinkDir("e"), "w")); err != nil {
			return err
		}
		rep, err := l.st.Clean(false)
		if err != nil {
			return err
		}
		l.rep = rep
	}
	return k.Run(ctx, spec, env)
}

func TestCleanDuringRunKeepsItsObjects(t *testing.T) {
	_, opt := setup(t)
	l := &cleaningLauncher{st: opt.Store, at: "z"}
	opt.Launcher, opt.Jobs = l, 1
	sum, err := Run(context.Background(), diamond(), opt)
	if err != nil {
		t.Fatalf("run with a clean in the middle: %v", err)
	}
	if l.rep == nil || !l.rep.InUse {
		t.Errorf("clean during a run did not see the store in use: %+v", l.rep)
	}
	for _, e := range sum.Entries {
		if !opt.Store.Check(e.Key).Complete {
			t.Errorf("clean during the run removed %s's object", e.ID)
		}
	}
}

// Two gsim processes on one machine (here two Runs with their own stores)
// share its GPU: their GPU stages must not overlap either, while a CPU stage
// is not held back.
func TestGPUSlotsAcrossRuns(t *testing.T) {
	f, opt1 := setup(t)
	opt1.SlotDir = t.TempDir()
	opt2 := opt1
	st2, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opt2.Store = st2
	p1 := &plan.Plan{Name: "e1", Instances: []*plan.Instance{inst("a", map[string]any{"gpu": 1, "sleep_ms": 150, "value": 1})}}
	p2 := &plan.Plan{Name: "e2", Instances: []*plan.Instance{
		inst("b", map[string]any{"gpu": 1, "sleep_ms": 150, "value": 2}),
		inst("cpu", map[string]any{"sleep_ms": 150, "value": 3}),
	}}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, run := range []func() error{
		func() error { _, err := Run(context.Background(), p1, opt1); return err },
		func() error { _, err := Run(context.Background(), p2, opt2); return err },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = run() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sa, sb := f.spans["a"], f.spans["b"]
	if sa[0].Before(sb[1]) && sb[0].Before(sa[1]) {
		t.Errorf("gpu stages of two runs overlapped: a %v–%v, b %v–%v", sa[0], sa[1], sb[0], sb[1])
	}
	if f.runs["cpu"] != 1 {
		t.Error("cpu stage did not run")
	}
}

// A forced (or corrupt, with Verify) instance whose key lock was held a
// moment by someone who made no new object (gsim clean or status take keys
// briefly) must still rerun: only a new object made meanwhile satisfies it.
func TestForcedRunNotSatisfiedByOldObjectAfterWaiting(t *testing.T) {
	f, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{inst("a", map[string]any{"value": 1})}}
	sum, err := Run(context.Background(), p, opt)
	if err != nil {
		t.Fatal(err)
	}
	key := sum.Entries[0].Key
	for _, tc := range []struct {
		name string
		set  func(*Options)
	}{
		{"force", func(o *Options) { o.Force = []string{"a"} }},
		{"verify", func(o *Options) {
			o.Verify = true
			// Same size, same mtime: only a rehash sees it.
			p := filepath.Join(o.Store.ObjectDir(key), "out.txt")
			st, _ := os.Stat(p)
			b, _ := os.ReadFile(p)
			b[0] ^= 1
			os.Chmod(p, 0o644) // committed files are read-only
			os.WriteFile(p, b, 0o644)
			os.Chtimes(p, st.ModTime(), st.ModTime())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opt
			tc.set(&o)
			l, _, err := o.Store.Lock(context.Background(), key, nil)
			if err != nil {
				t.Fatal(err)
			}
			go func() { time.Sleep(150 * time.Millisecond); l.Unlock() }()
			before := f.count("a")
			sum, err := Run(context.Background(), p, o)
			if err != nil {
				t.Fatal(err)
			}
			if f.count("a") != before+1 || sum.Count(Ran) != 1 {
				t.Errorf("after waiting for a lock that made nothing: ran %d times, %+v", f.count("a")-before, sum.Entries)
			}
			if probs, err := o.Store.Verify(key); err != nil || len(probs) > 0 {
				t.Errorf("object after the run: %v %v", probs, err)
			}
		})
	}
}

// syncBuffer is a display's writer shared by the executor's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// An instance waiting for a job or a slot is checked (and, with Verify,
// rehashed) once, not again each time another instance finishes.
func TestVerifyOncePerInstance(t *testing.T) {
	_, opt := setup(t)
	opt.Jobs = 1
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("a", map[string]any{"value": 1}),
		inst("b", map[string]any{"value": 2}),
		inst("c", map[string]any{"value": 3}),
	}}
	sum, err := Run(context.Background(), p, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range sum.Entries {
		// Same size, same mtime: only a rehash sees it.
		p := filepath.Join(opt.Store.ObjectDir(e.Key), "out.txt")
		st, _ := os.Stat(p)
		b, _ := os.ReadFile(p)
		b[0] ^= 1
		os.Chmod(p, 0o644) // committed files are read-only
		os.WriteFile(p, b, 0o644)
		os.Chtimes(p, st.ModTime(), st.ModTime())
	}
	var out syncBuffer
	opt.Verify, opt.Display = true, progress.NewPlain(&out, time.Now, time.Hour)
	if sum, err = Run(context.Background(), p, opt); err != nil || sum.Count(Ran) != 3 {
		t.Fatalf("verify run: %v %+v", err, sum)
	}
	for _, id := range []string{"a", "b", "c"} {
		if n := strings.Count(out.String(), " "+id+" corrupt"); n != 1 {
			t.Errorf("%s reported corrupt %d times:\n%s", id, n, out.String())
		}
	}
}
