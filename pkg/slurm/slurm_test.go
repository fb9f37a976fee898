package slurm

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestParseSbatch(t *testing.T) {
	for in, want := range map[string]string{"42\n": "42", "42;cluster2\n": "42", "sbatch: warning: x\n43\n": "43"} {
		got, err := parseSbatch(in)
		if err != nil || got != want {
			t.Errorf("parseSbatch(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := parseSbatch("Submitted batch job 42\n"); err == nil {
		t.Error("accepted a non-parsable answer")
	}
}

func TestParseSqueueAndSacct(t *testing.T) {
	q := parseSqueue("7|RUNNING|None|vm\n8|PENDING|Resources|\n9|COMPLETED|None|vm\n\n")
	want := map[string]JobState{
		"7": {ID: "7", State: "RUNNING", Node: "vm", ExitCode: -1, Signal: -1},
		"8": {ID: "8", State: "PENDING", Reason: "Resources", ExitCode: -1, Signal: -1},
		"9": {ID: "9", State: "COMPLETED", Node: "vm", ExitCode: 0, Signal: -1},
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("squeue: %+v", q)
	}
	a := parseSacct("10|CANCELLED by 0|0:15|vm\n11|OUT_OF_MEMORY|0:125|vm\n12|FAILED|3:0|None assigned\n12|COMPLETED|0:0|vm\n")
	if a["10"].State != "CANCELLED" || a["10"].Signal != 15 || a["11"].State != "OUT_OF_MEMORY" || a["12"].State != "COMPLETED" {
		t.Errorf("sacct: %+v", a)
	}
	// Every state gsim must explain, explained with what to do.
	for state, words := range map[string]string{
		"TIMEOUT": "raise resources.time", "OUT_OF_MEMORY": "raise resources.mem", "NODE_FAIL": "node failed",
		"PREEMPTED": "higher priority", "CANCELLED": "scancel", Vanished: "neither sacct",
	} {
		s := JobState{ID: "1", State: state, ExitCode: -1}
		if !s.Terminal() || !strings.Contains(s.Describe(), words) {
			t.Errorf("%s: terminal %v, %q", state, s.Terminal(), s.Describe())
		}
	}
	if (JobState{State: "FAILED", ExitCode: 3}).Describe() != "Slurm job  ended FAILED with exit code 3" {
		t.Errorf("%q", (JobState{State: "FAILED", ExitCode: 3}).Describe())
	}
	for s, retry := range map[string]bool{"PREEMPTED": true, "NODE_FAIL": true, "BOOT_FAIL": true, "FAILED": false, "TIMEOUT": false, "CANCELLED": false} {
		if (JobState{State: s}).Retryable() != retry {
			t.Errorf("%s retryable = %v", s, !retry)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestResolve(t *testing.T) {
	cfg := plan.Slurm{Defaults: plan.Resources{Partition: "gpu", Time: "01:00:00", GPUs: ptr(2), GPUType: "h100"}}
	tests := []struct {
		name     string
		kindGPUs int
		stage    plan.Resources
		cfg      plan.Slurm
		job      bool
		gpus     int
		args     string
	}{
		{"gpu kind is a job with the experiment's GPUs", 1, plan.Resources{}, cfg, true, 2,
			"--partition=gpu --time=01:00:00 --cpus-per-task=4 --gres=gpu:h100:2"},
		{"cpu kind stays here and holds no GPU", 0, plan.Resources{}, cfg, false, 0,
			"--partition=gpu --time=01:00:00 --cpus-per-task=1"},
		{"submit all makes a cpu kind a job", 0, plan.Resources{}, plan.Slurm{Submit: plan.SubmitAll}, true, 0, "--cpus-per-task=1"},
		{"stage job false keeps a gpu kind here", 1, plan.Resources{Job: ptr(false)}, cfg, false, 2, ""},
		{"stage gpus win", 1, plan.Resources{GPUs: ptr(1), CPUs: ptr(16), Mem: "64G", Sbatch: []string{"--exclusive"}}, cfg, true, 1,
			"--partition=gpu --time=01:00:00 --mem=64G --cpus-per-task=16 --gres=gpu:h100:1 --exclusive"},
		{"stage gpus make a cpu kind a gpu job", 0, plan.Resources{GPUs: ptr(1)}, plan.Slurm{}, true, 1, "--cpus-per-task=4 --gres=gpu:1"},
	}
	for _, tt := range tests {
		q := Resolve(tt.kindGPUs, tt.stage, tt.cfg)
		if q.Job != tt.job || q.GPUs != tt.gpus {
			t.Errorf("%s: job %v gpus %d", tt.name, q.Job, q.GPUs)
		}
		if !q.Job {
			continue
		}
		args := q.SbatchArgs("n", "/s/staging/k-1-1")
		fixed := []string{"--job-name=n", "--output=/s/staging/k-1-1/stage.log", "--open-mode=append", "--chdir=/s/staging/k-1-1", "--no-requeue"}
		if !reflect.DeepEqual(args[:len(fixed)], fixed) {
			t.Errorf("%s: gsim's own options %v", tt.name, args[:len(fixed)])
		}
		if got := strings.Join(args[len(fixed):], " "); got != tt.args {
			t.Errorf("%s: sbatch %s\n want %s", tt.name, got, tt.args)
		}
	}
}

func testSpec(t *testing.T, st *store.Store, key string) *stage.Spec {
	t.Helper()
	dir, err := st.NewStaging(key)
	if err != nil {
		t.Fatal(err)
	}
	spec := &stage.Spec{SchemaVersion: stage.SpecVersion, Stage: "gpu", Instance: "gpu[rate=1]", Kind: "gpukind", Key: key, OutDir: dir, Params: map[string]any{}}
	if err := stage.WriteSpec(filepath.Join(dir, store.SpecFile), spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestJobScriptGolden(t *testing.T) {
	spec := &stage.Spec{Instance: "bench[rate=4]", Key: "abc123", OutDir: "/store/staging/abc123-9-1"}
	got := jobScript("/opt/gsim's/bin/gsim", spec)
	golden := filepath.Join("testdata", "job.sh")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("job script differs from %s:\n%s", golden, got)
	}
}

// TestJobScriptRuns runs the job script with sh, as slurmd would, on a
// stand-in gsim: leftovers of an earlier run go, the exit code is recorded,
// and a folder the node cannot see fails clearly.
func TestJobScriptRuns(t *testing.T) {
	st, _ := store.Open(t.TempDir())
	spec := testSpec(t, st, "0123456789abcdef")
	fake := filepath.Join(t.TempDir(), "gsim")
	os.WriteFile(fake, []byte("#!/bin/sh\n[ \"$1 $2\" = 'stage exec' ] || exit 9\nls > seen.txt\nexit 3\n"), 0o755)
	os.WriteFile(filepath.Join(spec.OutDir, "leftover.csv"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(spec.OutDir, store.LogFile), []byte("earlier log\n"), 0o644)
	c := exec.Command("sh", "-s")
	c.Stdin = strings.NewReader(jobScript(fake, spec))
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("want exit 3 from the stage, got %v: %s", err, out)
	}
	seen, _ := os.ReadFile(filepath.Join(spec.OutDir, "seen.txt"))
	if strings.Contains(string(seen), "leftover") || !strings.Contains(string(seen), store.LogFile) || !strings.Contains(string(seen), store.SpecFile) {
		t.Errorf("the stage saw %q: leftovers must go, spec and log stay", seen)
	}
	if s := exitFileState("1", spec.OutDir); s.State != "FAILED" || s.ExitCode != 3 {
		t.Errorf("exit file says %+v", s)
	}
	os.RemoveAll(spec.OutDir)
	c = exec.Command("sh", "-s")
	c.Stdin = strings.NewReader(jobScript(fake, spec))
	out, err = c.CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 98 || !strings.Contains(string(out), "filesystem the compute nodes share") {
		t.Errorf("a missing folder: %v %s", err, out)
	}
}

// TestPollOneCallForAllJobs: however many jobs, one squeue per poll.
func TestPollOneCallForAllJobs(t *testing.T) {
	f := newFake()
	c := NewClient(f)
	p := newPoller(c, time.Hour, t.Logf)
	for i := 0; i < 500; i++ {
		id, _ := c.Submit(context.Background(), nil, "")
		f.jobs[id].state = "RUNNING"
		p.watch(id, t.TempDir(), nil)
	}
	for i := 0; i < 3; i++ {
		p.poll(context.Background())
	}
	if n := f.count("squeue"); n != 3 {
		t.Errorf("%d squeue calls for 3 polls", n)
	}
	if n := f.count("sacct"); n != 0 {
		t.Errorf("%d sacct calls", n)
	}
	last := f.calls[len(f.calls)-1]
	if strings.Count(arg(strings.Fields(last), "-j"), ",") != 499 {
		t.Errorf("the poll did not ask for all 500 jobs at once: %.80s…", last)
	}
}

// TestPollForgottenJobs: a job squeue no longer lists is asked of sacct on
// the next poll (instead of squeue), and without accounting judged by its
// exit file.
func TestPollForgottenJobs(t *testing.T) {
	f := newFake("COMPLETED", "FAILED", "COMPLETED")
	c := NewClient(f)
	p := newPoller(c, time.Hour, t.Logf)
	var ids []string
	var ts []*tracked
	for i := 0; i < 3; i++ {
		id, _ := c.Submit(context.Background(), nil, "")
		ids = append(ids, id)
		ts = append(ts, p.watch(id, t.TempDir(), nil))
	}
	f.forget[ids[0]], f.forget[ids[1]] = true, true
	p.poll(context.Background()) // squeue: 0 and 1 missing, 2 COMPLETED
	if !ts[2].state.Succeeded() || ts[0].state.Terminal() {
		t.Fatalf("after squeue: %+v %+v", ts[0].state, ts[2].state)
	}
	p.poll(context.Background()) // sacct for 0 and 1 only
	if f.count("sacct") != 1 || f.count("squeue") != 1 {
		t.Errorf("calls: %v", f.calls)
	}
	if !ts[0].state.Succeeded() || ts[1].state.State != "FAILED" || ts[1].state.ExitCode != 2 {
		t.Errorf("after sacct: %+v %+v", ts[0].state, ts[1].state)
	}

	f2 := newFake()
	f2.noAcct = true
	c2 := NewClient(f2)
	p2 := newPoller(c2, time.Hour, t.Logf)
	dirA, dirB := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dirA, ExitFile), []byte("0\n"), 0o644)
	a, _ := c2.Submit(context.Background(), nil, "")
	b, _ := c2.Submit(context.Background(), nil, "")
	ta, tb := p2.watch(a, dirA, nil), p2.watch(b, dirB, nil)
	f2.forget[a], f2.forget[b] = true, true
	p2.poll(context.Background())
	p2.poll(context.Background())
	if !ta.state.Succeeded() || tb.state.State != Vanished {
		t.Errorf("without accounting: %+v %+v", ta.state, tb.state)
	}
}

type gpuKind struct{ stage.Base }

func (gpuKind) Name() string                            { return "gpukind" }
func (gpuKind) Version() string                         { return "1" }
func (gpuKind) Resources(map[string]any) map[string]int { return map[string]int{"gpu": 1} }
func (gpuKind) Run(context.Context, *stage.Spec, stage.Env) error {
	return errors.New("runs as a job only")
}

func testLauncher(t *testing.T, f *fakeSlurm, retries int) (*Launcher, *store.Store) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Name: "e", Slurm: plan.Slurm{Poll: 5 * time.Millisecond, Retries: &retries, Gsim: "/bin/gsim"},
		Instances: []*plan.Instance{{ID: "gpu[rate=1]", Stage: "gpu", Kind: "gpukind"}}}
	l, err := New(Config{Store: st, Plan: p, Self: "/bin/gsim", Runner: f, Printf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, st
}

func TestLauncherResubmitsPreempted(t *testing.T) {
	f := newFake("PREEMPTED", "NODE_FAIL", "COMPLETED")
	l, st := testLauncher(t, f, 2)
	spec := testSpec(t, st, "00aa11bb22cc33dd")
	var log strings.Builder
	if err := l.Launch(context.Background(), gpuKind{}, spec, filepath.Join(spec.OutDir, store.SpecFile), stage.Env{Log: &log}); err != nil {
		t.Fatalf("want success on the third submission: %v", err)
	}
	if f.count("sbatch") != 3 {
		t.Errorf("%d submissions", f.count("sbatch"))
	}
	rec, _ := st.ReadJob(spec.Key)
	if rec == nil || rec.Attempt != 3 || !reflect.DeepEqual(rec.Previous, []string{"101", "102"}) || rec.ID != "103" {
		t.Errorf("record %+v", rec)
	}
	l.Settled(spec.Key, spec.OutDir)
	if rec, _ := st.ReadJob(spec.Key); rec != nil {
		t.Error("record kept after Settled")
	}

	f = newFake("PREEMPTED", "PREEMPTED")
	l, st = testLauncher(t, f, 1)
	spec = testSpec(t, st, "00aa11bb22cc33ee")
	err := l.Launch(context.Background(), gpuKind{}, spec, "", stage.Env{Log: &log})
	var je *JobError
	if !errors.As(err, &je) || je.State.State != "PREEMPTED" || !strings.Contains(err.Error(), "after 1 resubmissions") {
		t.Errorf("want a PREEMPTED failure after the one retry: %v", err)
	}
}

// TestLauncherFollowsRecordedJob: a record left by a gsim that died (with
// or without the job id) is followed, not submitted again.
func TestLauncherFollowsRecordedJob(t *testing.T) {
	for i, withID := range []bool{true, false} {
		f := newFake()
		l, st := testLauncher(t, f, 2)
		spec := testSpec(t, st, "00aa11bb22cc33d"+strconv.Itoa(i))
		id, _ := NewClient(f).Submit(context.Background(), []string{"--job-name=gsim-gpu-x"}, "")
		rec := &store.Job{Key: spec.Key, System: "slurm", Name: "gsim-gpu-x", Staging: spec.OutDir, Attempt: 1}
		if withID {
			rec.ID = id
		}
		if err := st.WriteJob(rec); err != nil {
			t.Fatal(err)
		}
		if got := l.Resumable(spec.Key); got != spec.OutDir {
			t.Fatalf("Resumable = %q", got)
		}
		if err := l.Launch(context.Background(), gpuKind{}, spec, "", stage.Env{Log: &strings.Builder{}}); err != nil {
			t.Fatal(err)
		}
		if n := f.count("sbatch"); n != 1 {
			t.Errorf("with id %v: %d sbatch calls, want only the first gsim's", withID, n)
		}
	}
}

// TestInterruptCancelsInOneCall: Launches interrupted together cancel
// their jobs with one scancel.
func TestInterruptCancelsInOneCall(t *testing.T) {
	f := newFake("RUNNING", "RUNNING", "RUNNING")
	l, st := testLauncher(t, f, 0)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		spec := testSpec(t, st, "00aa11bb22cc33f"+strconv.Itoa(i))
		go func() { errs <- l.Launch(ctx, gpuKind{}, spec, "", stage.Env{Log: &strings.Builder{}}) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.count("sbatch") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	for i := 0; i < 3; i++ {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("Launch returned %v", err)
		}
	}
	if n := f.count("scancel"); n != 1 {
		t.Errorf("%d scancel calls for 3 jobs", n)
	}
	if recs, _ := st.Jobs(); len(recs) != 0 {
		t.Errorf("%d records left for cancelled jobs", len(recs))
	}
}

// TestForwardProgress: a running job's progress lines, which reach gsim
// only through the log file, drive the display; partial lines wait.
func TestForwardProgress(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, store.LogFile)
	os.WriteFile(logPath, []byte("gsim: started\n"), 0o644)
	var got []string
	a := &active{staging: dir, env: stage.Env{Progress: func(done, total float64, msg string) {
		got = append(got, strconv.FormatFloat(done, 'g', -1, 64)+"/"+strconv.FormatFloat(total, 'g', -1, 64)+" "+msg)
	}}}
	a.offset = 14
	l := &Launcher{}
	appendTo := func(s string) {
		f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString(s)
		f.Close()
	}
	appendTo("##gsim progress 1 10 warmup\nsome log\n##gsim progress 4 10 requests\n##gsim progress 5 1")
	l.forwardProgress(a)
	appendTo("0 requests\n")
	l.forwardProgress(a)
	l.forwardProgress(a) // nothing new: nothing reported
	if strings.Join(got, "; ") != "4/10 requests; 5/10 requests" {
		t.Errorf("progress reported: %q", got)
	}
}

// TestLostSbatchReplyIsNotResubmitted: sbatch fails without an answer
// although the controller took the job; the launcher finds it by name
// rather than submitting it again.
func TestLostSbatchReplyIsNotResubmitted(t *testing.T) {
	f := newFake()
	f.lost = 1
	l, st := testLauncher(t, f, 0)
	spec := testSpec(t, st, "00aa11bb22cc33aa")
	if err := l.Launch(context.Background(), gpuKind{}, spec, "", stage.Env{Log: &strings.Builder{}}); err != nil {
		t.Fatal(err)
	}
	if n := f.count("sbatch"); n != 1 {
		t.Errorf("%d sbatch calls: the job was submitted again", n)
	}
	if rec, _ := st.ReadJob(spec.Key); rec == nil || rec.ID != "101" {
		t.Errorf("record %+v", rec)
	}
}
