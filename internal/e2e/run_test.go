package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNoChangeRunsNothing(t *testing.T) {
	e := newEnv(t, pipeline)
	r := e.mustRun()
	if ran, _, _, _, _ := summary(t, r); ran != 6 {
		t.Fatalf("first run ran %d, want 6: %s", ran, r)
	}
	before := e.countsNow()
	r = e.mustRun()
	if ran, up, _, _, _ := summary(t, r); ran != 0 || up != 6 {
		t.Errorf("second run: ran %d up-to-date %d: %s", ran, up, r)
	}
	if got := ranSince(before, e.countsNow()); len(got) != 0 {
		t.Errorf("second run executed %v", got)
	}
	b, err := os.ReadFile(filepath.Join(e.store, "runs", "t", "r", "r.txt"))
	if err != nil || string(b) != "1\nshared-v1\n1\n2\nshared-v1\n1\n" {
		t.Errorf("r.txt = %q, %v", b, err)
	}
	st := e.gsim("status", e.exp)
	if st.code != 0 || strings.Count(st.stdout, "up-to-date") != 6 {
		t.Errorf("status: %s", st)
	}
}

func TestParamChangeRerunsExactlyDescendants(t *testing.T) {
	e := newEnv(t, pipeline)
	e.mustRun()

	// --set: one param of b reruns every b cell and the fan-in, nothing else.
	dry := lines(e.gsim("run", e.exp, "--dry-run", "--set", "stages.b.with.env.X=2").stdout)
	wantDry := map[string]string{
		"s":         "skip (up to date)",
		"w[rate=1]": "skip (up to date)",
		"w[rate=2]": "skip (up to date)",
		"b[rate=1]": "run (stale: param with.env.X 1 → 2)",
		"b[rate=2]": "run (stale: param with.env.X 1 → 2)",
		"r":         "run (after upstream)",
	}
	if !reflect.DeepEqual(dry, wantDry) {
		t.Errorf("dry run:\n%v\nwant\n%v", dry, wantDry)
	}
	before := e.countsNow()
	e.mustRun("--set", "stages.b.with.env.X=2")
	if got, want := ranSince(before, e.countsNow()), []string{"b[rate=1]", "b[rate=2]", "r"}; !reflect.DeepEqual(got, want) {
		t.Errorf("--set reran %v, want %v", got, want)
	}

	// Back to the file's value: the old objects are still there.
	before = e.countsNow()
	if ran, _, _, _, _ := summary(t, e.mustRun()); ran != 0 {
		t.Errorf("returning to a previous value ran %d stages", ran)
	}

	// Editing the YAML: the shared stage's script changes its output, so it
	// and everything downstream of it rerun; the w cells do not.
	e.write(strings.Replace(pipeline, "shared-v1", "shared-v2", 1))
	st := lines(e.gsim("status", e.exp).stdout)
	if st["s"] != "stale (param with.run changed)" || st["b[rate=1]"] != "stale (upstream s is not up to date)" ||
		st["w[rate=1]"] != "up-to-date" {
		t.Errorf("status after edit: %v", st)
	}
	before = e.countsNow()
	e.mustRun()
	if got, want := ranSince(before, e.countsNow()), []string{"b[rate=1]", "b[rate=2]", "r", "s"}; !reflect.DeepEqual(got, want) {
		t.Errorf("YAML edit reran %v, want %v", got, want)
	}

	// A new matrix value adds cells and reruns the fan-in only.
	before = e.countsNow()
	e.mustRun("--set", "matrix.rate=[1,2,4]")
	if got, want := ranSince(before, e.countsNow()), []string{"b[rate=4]", "r", "w[rate=4]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("new cell reran %v, want %v", got, want)
	}

	// Run only the upstream with a new value: the dependents' keys change
	// through the input digest, and status says so.
	newW := "stages.w.with.run=" + count + `; echo "$RATE more" > w.txt`
	e.mustRun("--set", "matrix.rate=[1,2,4]", "--set", newW, "--only", "w")
	st = lines(e.gsim("status", e.exp, "--set", "matrix.rate=[1,2,4]", "--set", newW).stdout)
	if st["w[rate=4]"] != "up-to-date" || st["b[rate=4]"] != "stale (input w changed)" {
		t.Errorf("status after --only w: %v", st)
	}

	// Objects no link points to any more are what clean removes.
	cl := e.gsim("clean")
	if cl.code != 0 || !strings.Contains(cl.stdout, "no runs/ link references it") {
		t.Errorf("clean: %s", cl)
	}
	if ran, _, _, _, _ := summary(t, e.mustRun("--set", "matrix.rate=[1,2,4]", "--set", newW, "--only", "w")); ran != 0 {
		t.Errorf("clean removed a linked object")
	}
}

// killable: w then a stage that writes half its output, records its pid and
// waits for $TESTDIR/go, then finishes; then a dependent.
const killable = `name: k
stages:
  w:
    uses: shell
    with:
      run: ` + count + `; echo w > w.txt
      outputs: [w.txt]
  slow:
    uses: shell
    needs: [w]
    with:
      run: |
        ` + count + `
        echo partial > out.txt
        echo $$ > "$TESTDIR/slow.pid"
        while [ ! -e "$TESTDIR/go" ]; do sleep 0.02; done
        echo complete >> out.txt
      outputs: [out.txt]
  after:
    uses: shell
    needs: [slow]
    with:
      run: ` + count + `; cp "$GSIM_INPUT_SLOW/out.txt" .
      outputs: [out.txt]
`

func TestKillResumes(t *testing.T) {
	e := newEnv(t, killable)
	c := e.cmd("run", e.exp)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(e.dir, "slow.pid")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatal("slow stage never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	// The stage runs in its own process group, so it outlives gsim; end it
	// as a user's next boot would.
	b, _ := os.ReadFile(pidFile)
	var pid int
	if _, err := fmtSscan(strings.TrimSpace(string(b)), &pid); err == nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}

	// Nothing of the killed attempt is an object: its folder is in staging
	// and has only the partial output.
	objs, _ := filepath.Glob(filepath.Join(e.store, "objects", "*", "out.txt"))
	if len(objs) != 0 {
		t.Fatalf("killed stage adopted: %v", objs)
	}
	partial, _ := filepath.Glob(filepath.Join(e.store, "staging", "*", "out.txt"))
	if len(partial) != 1 {
		t.Fatalf("staging leftovers: %v", partial)
	}
	st := e.gsim("status", e.exp)
	if l := lines(st.stdout); l["w"] != "up-to-date" || l["slow"] != "missing" || l["after"] != "missing" {
		t.Errorf("status after kill:\n%s", st)
	}

	os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644)
	before := e.countsNow()
	e.mustRun()
	if got, want := ranSince(before, e.countsNow()), []string{"after", "slow"}; !reflect.DeepEqual(got, want) {
		t.Errorf("resume ran %v, want %v", got, want)
	}
	out, err := os.ReadFile(filepath.Join(e.store, "runs", "k", "after", "out.txt"))
	if err != nil || string(out) != "partial\ncomplete\n" {
		t.Errorf("resumed output %q, %v", out, err)
	}
	cl := e.gsim("clean")
	if !strings.Contains(cl.stdout, "unfinished attempt") {
		t.Errorf("clean did not remove the killed attempt: %s", cl)
	}
	if left, _ := filepath.Glob(filepath.Join(e.store, "staging", "*")); len(left) != 0 {
		t.Errorf("staging after clean: %v", left)
	}
}

// failing: w[rate=2] fails; b depends on w per cell.
const failing = `name: f
matrix:
  rate: [1, 2]
stages:
  w:
    uses: shell
    with:
      run: |
        ` + count + `
        echo "making $RATE"
        if [ "$RATE" = 2 ]; then echo "oops: rate 2 is broken" >&2; exit 3; fi
        echo "$RATE" > w.txt
      env: {RATE: "${{ matrix.rate }}"}
      outputs: [w.txt]
  b:
    uses: shell
    needs: [w]
    with:
      run: ` + count + `; cp "$GSIM_INPUT_W/w.txt" b.txt
      outputs: [b.txt]
  r:
    uses: shell
    needs: [{stage: b, all: true}]
    with:
      run: ` + count + `; touch r.txt
      outputs: [r.txt]
`

func TestFailure(t *testing.T) {
	e := newEnv(t, failing)
	r := e.gsim("run", e.exp, "--jobs", "1")
	if r.code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	for _, want := range []string{
		"stage w[rate=2] failed",
		"command `bash -euo pipefail -c '" + count + " …'` exited with code 3",
		"log: " + filepath.Join(e.store, "failed"),
		"| oops: rate 2 is broken",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r)
		}
	}
	c := e.countsNow()
	if c["b[rate=2]"] != 0 || c["r"] != 0 {
		t.Errorf("dependents of the failure ran: %v", c)
	}
	if c["b[rate=1]"] != 0 {
		t.Errorf("without --keep-going the run went on: %v", c)
	}
	st := e.gsim("status", e.exp)
	if !strings.HasPrefix(lines(st.stdout)["w[rate=2]"], "failed (log: "+filepath.Join(e.store, "failed")) {
		t.Errorf("status:\n%s", st)
	}

	r = e.gsim("run", e.exp, "--jobs", "1", "--keep-going")
	if r.code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	c = e.countsNow()
	if c["b[rate=1]"] != 1 || c["b[rate=2]"] != 0 || c["r"] != 0 {
		t.Errorf("--keep-going: %v", c)
	}
	if !strings.Contains(r.stdout, "skipped  b[rate=2]  upstream w[rate=2] failed") {
		t.Errorf("summary lacks the skip reason:\n%s", r)
	}
	if objs, _ := filepath.Glob(filepath.Join(e.store, "objects", "*", "w.txt")); len(objs) != 1 {
		t.Errorf("objects with w.txt: %v", objs)
	}
}

// concurrent: four independent slow stages and a fan-in.
const concurrent = `name: c
matrix:
  i: [1, 2, 3, 4]
stages:
  w:
    uses: shell
    with:
      run: ` + count + `; sleep 0.3; echo "$I" > w.txt
      env: {I: "${{ matrix.i }}"}
      outputs: [w.txt]
  r:
    uses: shell
    needs: [{stage: w, all: true}]
    with:
      run: ` + count + `; sleep 0.1; touch r.txt
      outputs: [r.txt]
`

func TestConcurrentRunsExecuteEachKeyOnce(t *testing.T) {
	e := newEnv(t, concurrent)
	cmds := []*cmdOut{e.start("run", e.exp, "--jobs", "2"), e.start("run", e.exp, "--jobs", "2")}
	ranTotal, reusedTotal, waited := 0, 0, false
	for _, c := range cmds {
		r := c.wait(t)
		if r.code != 0 {
			t.Fatalf("concurrent run: %s", r)
		}
		ran, up, reused, _, _ := summary(t, r)
		if ran+up+reused != 5 {
			t.Errorf("summary does not cover 5 instances: %s", r)
		}
		ranTotal += ran
		reusedTotal += reused
		waited = waited || strings.Contains(r.stderr, "waiting for another gsim running w[i=")
	}
	// The runs overlapped (each stage sleeps), so one waited on the other's
	// lock and then reused its output.
	if reusedTotal == 0 || !waited {
		t.Errorf("no run waited for the other: reused %d, waiting message %v", reusedTotal, waited)
	}
	for id, n := range e.countsNow() {
		if n != 1 {
			t.Errorf("%s executed %d times", id, n)
		}
	}
	if ranTotal != 5 {
		t.Errorf("the two runs ran %d instances together, want 5", ranTotal)
	}
}

func TestVerifyCorruptOutput(t *testing.T) {
	e := newEnv(t, pipeline)
	e.mustRun()
	p := filepath.Join(e.store, "runs", "t", "w.rate@1", "w.txt") // the link of w[rate=1]
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	// Bit rot: same size, same mtime, different bytes. Only --verify sees it.
	os.Chmod(p, 0o644) // committed files are read-only
	if err := os.WriteFile(p, []byte("9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, st.ModTime(), st.ModTime())
	if s := e.gsim("status", e.exp); s.code != 0 || strings.Contains(s.stdout, "corrupt") {
		t.Errorf("status without --verify: %s", s)
	}
	s := e.gsim("status", e.exp, "--verify")
	if s.code != 1 || lines(s.stdout)["w[rate=1]"] != "corrupt (w.txt: sha256 mismatch)" {
		t.Errorf("status --verify: %s", s)
	}
	before := e.countsNow()
	e.mustRun("--verify")
	// The rerun restores identical bytes, so nothing downstream reruns.
	if got, want := ranSince(before, e.countsNow()), []string{"w[rate=1]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("run --verify reran %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(p); string(b) != "1\n" {
		t.Errorf("w.txt after repair = %q", b)
	}
	if s := e.gsim("status", e.exp, "--verify"); s.code != 0 {
		t.Errorf("status after repair: %s", s)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	e := newEnv(t, pipeline)
	for _, args := range [][]string{
		{"run"},
		{"run", "nope.yaml"},
		{"run", e.exp, "--only", "nosuchstage"},
		{"run", e.exp, "--set", "stages.nosuch.with.x=1"},
		{"run", e.exp, "--bogus-flag"},
		{"dag", e.exp, "--format", "png"},
	} {
		if r := e.gsim(args...); r.code != 2 {
			t.Errorf("gsim %v: %s", args, r)
		}
	}
	e.write(strings.Replace(pipeline, "uses: shell", "uses: shel", 1))
	if r := e.gsim("validate", e.exp); r.code != 2 || !strings.Contains(r.stderr, "exp.yaml:") {
		t.Errorf("validate of a bad kind: %s", r)
	}
}

func TestStageExecAndSubprocess(t *testing.T) {
	e := newEnv(t, pipeline)
	r := e.mustRun("--subprocess")
	if ran, _, _, _, _ := summary(t, r); ran != 6 {
		t.Fatalf("subprocess run: %s", r)
	}
	// Same keys in-process: nothing to do.
	if ran, _, _, _, _ := summary(t, e.mustRun()); ran != 0 {
		t.Errorf("in-process run after a subprocess run ran %d", ran)
	}
	log, err := os.ReadFile(filepath.Join(e.store, "runs", "t", "r", "stage.log"))
	if err != nil || !strings.Contains(string(log), "gsim: r (kind shell") {
		t.Errorf("stage.log: %q %v", log, err)
	}
}

func TestUndeclaredOutputFailsValidation(t *testing.T) {
	e := newEnv(t, `name: v
stages:
  w:
    uses: shell
    with:
      run: echo hi > other.txt
      outputs: [w.txt, other.txt]
`)
	r := e.gsim("run", e.exp)
	if r.code != 1 || !strings.Contains(r.stderr, "stage w failed: outputs rejected: declared outputs not created: w.txt") {
		t.Errorf("run: %s", r)
	}
	if objs, _ := filepath.Glob(filepath.Join(e.store, "objects", "*")); len(objs) != 0 {
		t.Errorf("rejected output adopted: %v", objs)
	}
	if _, err := os.Stat(filepath.Join(e.store, "failed")); err != nil {
		t.Error(err)
	}
}

func TestStageExecFromSpec(t *testing.T) {
	e := newEnv(t, pipeline)
	out := filepath.Join(e.dir, "out")
	os.Mkdir(out, 0o755)
	spec := `{"schema_version": 1, "instance": "x", "kind": "shell", "out_dir": "` + out + `",
	  "params": {"run": "echo \"##gsim progress 1 2 half\"; echo made > x.txt", "outputs": ["x.txt"]}}`
	specPath := filepath.Join(e.dir, "spec.json")
	os.WriteFile(specPath, []byte(spec), 0o644)
	r := e.gsim("stage", "exec", specPath)
	if r.code != 0 || !strings.Contains(r.stdout, "##gsim progress 1 2 half") {
		t.Fatalf("stage exec: %s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "x.txt")); string(b) != "made\n" {
		t.Errorf("x.txt = %q", b)
	}
	os.WriteFile(specPath, []byte(strings.Replace(spec, `"x.txt"]`, `"y.txt"]`, 1)), 0o644)
	if r := e.gsim("stage", "exec", specPath); r.code != 1 || !strings.Contains(r.stderr, "y.txt") {
		t.Errorf("stage exec with a missing output: %s", r)
	}
}

// slowPair: b waits until the test lets it finish.
const slowPair = `name: t
stages:
  a:
    uses: shell
    with:
      run: ` + count + `; echo a > a.txt
      outputs: [a.txt]
  b:
    uses: shell
    needs: [a]
    with:
      run: ` + count + `; touch "$TESTDIR/started"; while [ ! -e "$TESTDIR/go" ]; do sleep 0.02; done; cat "$GSIM_INPUT_A/a.txt" > b.txt
      outputs: [b.txt]
`

// gsim clean while a run is live keeps what the run committed or reads
// (an object is linked only after its commit) and says so.
func TestCleanDuringRun(t *testing.T) {
	e := newEnv(t, slowPair)
	run := e.start("run", e.exp)
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(e.dir, "started")); err == nil {
			break
		}
		if i > 500 {
			os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644)
			t.Fatalf("b never started: %s", run.wait(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl := e.gsim("clean")
	os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644)
	if r := run.wait(t); r.code != 0 {
		t.Fatalf("run with a clean in the middle: %s", r)
	}
	if cl.code != 0 || !strings.Contains(cl.stdout, "a gsim run is using this store") {
		t.Errorf("clean during a run: %s", cl)
	}
	if ran, _, _, _, _ := summary(t, e.mustRun()); ran != 0 {
		t.Error("clean during the run removed an output")
	}
	if cl := e.gsim("clean"); cl.code != 0 || strings.Contains(cl.stdout, "using this store") {
		t.Errorf("clean after the run: %s", cl)
	}
}

// gpuStage records when it held the GPU; two experiments in one store.
const gpuStage = `name: NAME
stages:
  g:
    uses: shell
    with:
      run: date +%s%N > "$TESTDIR/NAME.start"; sleep 0.3; date +%s%N > "$TESTDIR/NAME.end"; echo NAME > g.txt
      outputs: [g.txt]
      resources: {gpu: 1}
`

// Two gsim runs on one machine share its GPU: their GPU stages take turns.
func TestGPUStagesOfTwoRunsNeverOverlap(t *testing.T) {
	e := newEnv(t, strings.ReplaceAll(gpuStage, "NAME", "one"))
	two := filepath.Join(e.dir, "two.yaml")
	if err := os.WriteFile(two, []byte(strings.ReplaceAll(gpuStage, "NAME", "two")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmds := []*cmdOut{e.start("run", e.exp), e.start("run", two)}
	waited := false
	for _, c := range cmds {
		r := c.wait(t)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		waited = waited || strings.Contains(r.stderr, "waits for a gpu slot another gsim holds")
	}
	span := func(name string) (int64, int64) {
		var s, e2 int64
		for _, x := range []struct {
			suffix string
			v      *int64
		}{{".start", &s}, {".end", &e2}} {
			b, err := os.ReadFile(filepath.Join(e.dir, name+x.suffix))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fmtSscan(string(b), x.v); err != nil {
				t.Fatal(err)
			}
		}
		return s, e2
	}
	s1, e1 := span("one")
	s2, e2 := span("two")
	if s1 < e2 && s2 < e1 {
		t.Errorf("gpu stages of two runs overlapped: one %d–%d, two %d–%d", s1, e1, s2, e2)
	}
	if !waited {
		t.Error("neither run said it waited for the GPU")
	}
}
