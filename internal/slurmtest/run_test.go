package slurmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/store"
)

// where records whether a stage ran as a job: a job has SLURM_JOB_ID.
const where = `echo "${SLURM_JOB_ID:-local}" > where.txt`

// sweep: a local generator per cell, a stand-in GPU stage per cell (a shell
// stage holding one GPU, so a job asking the fake GPU gres) and a local
// fan-in report.
func sweep(name string, sleep string) string {
	return `name: ` + name + `
matrix: {rate: [1, 2, 3, 4]}
executor:
  slurm: {poll: 1s}
stages:
  gen:
    uses: shell
    with: {run: 'echo ${{ matrix.rate }} > gen.txt; ` + where + `', outputs: [gen.txt]}
  gpu:
    uses: shell
    needs: [gen]
    with:
      run: 'sleep ` + sleep + `; echo "##gsim progress 1 1 done"; cat "$GSIM_INPUT_GEN/gen.txt" > out.txt; ` + where + `'
      outputs: [out.txt]
      resources: {gpu: 1}
  report:
    uses: shell
    needs: [{stage: gpu, all: true}]
    with: {run: 'while read -r d; do cat "$d/out.txt"; done <<< "$GSIM_INPUTS_GPU" > all.txt; ` + where + `', outputs: [all.txt]}
`
}

// TestSweepJobsAndLocal: the GPU stages of a matrix sweep run as Slurm jobs
// asking for the (fake) GPU gres, the others here; a rerun submits nothing
// and asks Slurm nothing.
func TestSweepJobsAndLocal(t *testing.T) {
	e := newEnv(t, sweep("sweep", "1"))
	r := e.mustRun()
	runs := filepath.Join(e.store, "runs", "sweep")
	for _, rate := range []string{"1", "2", "3", "4"} {
		if w := readFile(t, filepath.Join(runs, store.LinkName("gen[rate="+rate+"]"), "where.txt")); w != "local" {
			t.Errorf("gen[rate=%s] ran in job %s, want here", rate, w)
		}
		if w := readFile(t, filepath.Join(runs, store.LinkName("gpu[rate="+rate+"]"), "where.txt")); w == "local" {
			t.Errorf("gpu[rate=%s] ran here, want a Slurm job", rate)
		}
	}
	if w := readFile(t, filepath.Join(runs, "report", "where.txt")); w != "local" {
		t.Errorf("report ran in job %s", w)
	}
	if got := readFile(t, filepath.Join(runs, "report", "all.txt")); got != "1\n2\n3\n4" {
		t.Errorf("report read %q", got)
	}
	subs := e.submissions()
	if len(subs) != 4 {
		t.Errorf("%d keys submitted, want the 4 GPU instances: %v", len(subs), subs)
	}
	noDuplicates(t, subs)
	// Each job asked for one GPU of the declared gres.
	for _, j := range e.jobs() {
		out, _ := exec.Command("squeue", "-h", "-t", "all", "-j", j.id, "-o", "%b").Output()
		if !strings.Contains(string(out), "gpu:1") {
			t.Errorf("job %s asked for %q, want gpu:1", j.id, strings.TrimSpace(string(out)))
		}
	}
	submitted, sbatch, squeue, sacct, _ := commands(t, r)
	if submitted != 4 || sbatch != 4 || sacct != 0 {
		t.Errorf("submitted %d with %d sbatch, %d sacct", submitted, sbatch, sacct)
	}
	// One squeue or sacct per poll interval (1s here), not one per job.
	if limit := int(elapsed(t, r).Seconds()) + 2; squeue == 0 || squeue+sacct > limit {
		t.Errorf("%d squeue and %d sacct calls in a %s run with a 1s poll", squeue, sacct, elapsed(t, r))
	}
	if !strings.Contains(r.stderr, "submitted as Slurm job") || !strings.Contains(r.stderr, "running on") {
		t.Errorf("no job lines in the display:\n%s", r.stderr)
	}
	// Nothing to do: nothing submitted, Slurm not even asked.
	r = e.mustRun()
	if strings.Contains(r.stdout, "slurm:") {
		t.Errorf("no-op rerun asked Slurm: %s", r.stdout)
	}
}

// TestKill9ResumesWithoutDuplicates: gsim killed with -9 while its jobs are
// queued and running; some finish while it is gone. Started again, it
// follows every job it had submitted, commits those that ended, and submits
// no key twice.
func TestKill9ResumesWithoutDuplicates(t *testing.T) {
	e := newEnv(t, sweep("kill", "6"))
	first := e.start("run", e.exp, "--executor", "slurm")
	// The test cluster's two fake GPUs: two jobs run, two wait.
	e.waitFor("running and queued jobs", 60*time.Second, func() bool {
		s := e.states()
		return s["RUNNING"] >= 1 && s["PENDING"] >= 1 && len(e.jobs()) == 4
	})
	first.c.Process.Kill()
	first.wait(t)
	// Let the running pair finish while no gsim watches.
	e.waitFor("a job to complete with gsim gone", 60*time.Second, func() bool { return e.states()["COMPLETED"] >= 1 })
	if s := e.states(); s["PENDING"]+s["RUNNING"] == 0 {
		t.Fatalf("every job ended before the restart; the test wants some still queued: %v", s)
	}
	st := e.gsim("status", e.exp)
	if !strings.Contains(st.stdout, "Slurm job") {
		t.Errorf("status does not show the jobs:\n%s", st)
	}
	r := e.mustRun()
	submitted, sbatch, _, _, _ := commands(t, r)
	if submitted != 0 || sbatch != 0 {
		t.Errorf("the restarted gsim submitted %d jobs: %s", submitted, r.stdout)
	}
	if !strings.Contains(r.stdout, "4 followed from an earlier gsim") {
		t.Errorf("restart did not follow the 4 jobs: %s", r.stdout)
	}
	noDuplicates(t, e.submissions())
	if got := readFile(t, filepath.Join(e.store, "runs", "kill", "report", "all.txt")); got != "1\n2\n3\n4" {
		t.Errorf("report read %q", got)
	}
	if recs, _ := os.ReadDir(filepath.Join(e.store, "jobs")); len(recs) != 0 {
		t.Errorf("%d job records left after every job was settled", len(recs))
	}
}

// TestJobExits1: the failure names the job's state and exit code and shows
// the log's tail; a rerun submits the job again.
func TestJobExits1(t *testing.T) {
	e := newEnv(t, `name: exit1
executor: {slurm: {poll: 1s}}
stages:
  bad:
    uses: shell
    with: {run: 'echo working on it; echo "it broke" >&2; exit 1', resources: {gpu: 1}}
`)
	r := e.run()
	if r.code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	for _, want := range []string{"stage bad failed: Slurm job", "ended FAILED", "exit code 1", "| it broke", "log: " + filepath.Join(e.store, "failed")} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("failure message lacks %q:\n%s", want, r.stderr)
		}
	}
	r = e.run()
	if r.code != 1 {
		t.Fatalf("want exit 1 again: %s", r)
	}
	for k, n := range e.submissions() {
		if n != 2 {
			t.Errorf("%s submitted %d times over two runs, want 2", k, n)
		}
	}
}

// TestTimeLimit: a job killed at its time limit fails as TIMEOUT, with
// Slurm's own message in the log tail. Slurm counts limits in minutes, so
// this test takes one.
func TestTimeLimit(t *testing.T) {
	e := newEnv(t, `name: timeout
executor: {slurm: {poll: 1s}}
stages:
  slow:
    uses: shell
    resources: {time: 1m}
    with: {run: 'echo started; sleep 600', resources: {gpu: 1}}
`)
	r := e.run()
	if r.code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	for _, want := range []string{"ended TIMEOUT", "raise resources.time", "TIME LIMIT"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("failure message lacks %q:\n%s", want, r.stderr)
		}
	}
}

// TestScancelFromOutside: a job cancelled by someone else fails its stage
// as CANCELLED.
func TestScancelFromOutside(t *testing.T) {
	e := newEnv(t, `name: scancel
executor: {slurm: {poll: 1s}}
stages:
  long:
    uses: shell
    with: {run: 'sleep 600', resources: {gpu: 1}}
`)
	g := e.start("run", e.exp, "--executor", "slurm")
	e.waitFor("the job to run", 60*time.Second, func() bool { return e.states()["RUNNING"] == 1 })
	if out, err := exec.Command("scancel", e.jobs()[0].id).CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	r := g.wait(t)
	if r.code != 1 || !strings.Contains(r.stderr, "ended CANCELLED") {
		t.Errorf("want a CANCELLED failure: %s", r)
	}
}

// TestInterruptCancelsJobs: Ctrl-C (SIGINT) cancels every job of the run,
// with one scancel, and keeps nothing of them.
func TestInterruptCancelsJobs(t *testing.T) {
	e := newEnv(t, sweep("interrupt", "600"))
	g := e.start("run", e.exp, "--executor", "slurm")
	e.waitFor("4 jobs submitted", 60*time.Second, func() bool { return len(e.jobs()) == 4 })
	time.Sleep(500 * time.Millisecond)
	g.c.Process.Signal(syscall.SIGINT)
	r := g.wait(t)
	if r.code == 0 || !strings.Contains(r.stderr, "interrupted") {
		t.Errorf("want an interrupted run: %s", r)
	}
	if _, _, _, _, scancel := commands(t, r); scancel != 1 {
		t.Errorf("%d scancel calls, want one for all jobs", scancel)
	}
	e.waitFor("every job cancelled", 30*time.Second, func() bool { return e.states()["CANCELLED"] == 4 })
	if recs, _ := os.ReadDir(filepath.Join(e.store, "jobs")); len(recs) != 0 {
		t.Errorf("%d job records left for cancelled jobs", len(recs))
	}
	if objs, _ := os.ReadDir(filepath.Join(e.store, "objects")); len(objs) != 4 {
		t.Errorf("%d objects, want only the 4 gen outputs", len(objs))
	}
}

// TestTwoGsimsOneStore: two gsim processes started together on one store
// submit every key once; the second waits for, then reuses, the first's.
func TestTwoGsimsOneStore(t *testing.T) {
	e := newEnv(t, sweep("two", "2"))
	a := e.start("run", e.exp, "--executor", "slurm")
	b := e.start("run", e.exp, "--executor", "slurm")
	ra, rb := a.wait(t), b.wait(t)
	if ra.code != 0 || rb.code != 0 {
		t.Fatalf("runs failed:\n%s\n%s", ra, rb)
	}
	noDuplicates(t, e.submissions())
	// Either run may have found every key already taken by the other and
	// asked nothing of Slurm; together they submit each key once.
	sa, sb := submitted(t, ra), submitted(t, rb)
	if sa+sb != 4 {
		t.Errorf("the two runs submitted %d and %d jobs, want 4 together", sa, sb)
	}
}

// TestNodeFailureResubmits: a node that goes down under a running job ends
// it NODE_FAIL; gsim submits it again and the stage succeeds.
func TestNodeFailureResubmits(t *testing.T) {
	e := newEnv(t, `name: nodefail
executor: {slurm: {poll: 1s, retries: 1}}
stages:
  job:
    uses: shell
    with: {run: 'sleep 5; echo ok > ok.txt', outputs: [ok.txt], resources: {gpu: 1}}
`)
	node := needCluster(t)
	if clusterName() != testClusterName {
		t.Skipf("sets a node down: only on the test cluster .ci/slurm-up.sh starts (%s)", testClusterName)
	}
	g := e.start("run", e.exp, "--executor", "slurm")
	e.waitFor("the job to run", 60*time.Second, func() bool { return e.states()["RUNNING"] == 1 })
	if out, err := exec.Command("scontrol", "update", "NodeName="+node, "State=DOWN", "Reason=gsim-node-fail-test").CombinedOutput(); err != nil {
		t.Skipf("cannot set the node down (needs Slurm admin rights): %v %s", err, out)
	}
	// The test cluster returns a node to service by itself (ReturnToService=2);
	// a resume covers a cluster that does not.
	time.Sleep(2 * time.Second)
	exec.Command("scontrol", "update", "NodeName="+node, "State=RESUME").Run()
	r := g.wait(t)
	if r.code != 0 {
		t.Fatalf("want success after a resubmission: %s", r)
	}
	if !strings.Contains(r.stderr, "NODE_FAIL") || !strings.Contains(r.stderr, "submitting it again") {
		t.Errorf("no resubmission after NODE_FAIL in:\n%s", r.stderr)
	}
	if s := e.states(); s["NODE_FAIL"] != 1 || s["COMPLETED"] != 1 {
		t.Errorf("jobs: %v", e.jobs())
	}
}

// TestDryRunSaysWhere: a dry run with --executor slurm says which instances
// would be jobs and with which sbatch options (--slurm and the file's
// resources merged), and asks Slurm nothing, so it needs no cluster.
func TestDryRunSaysWhere(t *testing.T) {
	dir := t.TempDir()
	e := &env{t: t, dir: dir, exp: filepath.Join(dir, "exp.yaml"), store: filepath.Join(dir, "store")}
	os.WriteFile(e.exp, []byte(sweep("dry", "1")+`  sim:
    uses: shell
    needs: [gen]
    resources: {job: true, time: 90m, mem: 8G}
    with: {run: 'true'}
`), 0o644)
	r := e.gsim("run", e.exp, "--executor", "slurm", "--dry-run", "--slurm", "partition=batch", "--slurm", "time=2h")
	if r.code != 0 {
		t.Fatal(r)
	}
	want := map[string]string{
		"gen[rate=1]": "run (missing); here",
		"gpu[rate=1]": "run (after upstream); Slurm job: sbatch --partition=batch --time=02:00:00 --cpus-per-task=4 --gres=gpu:1",
		"sim[rate=1]": "run (after upstream); Slurm job: sbatch --partition=batch --time=01:30:00 --mem=8G --cpus-per-task=1",
		"report":      "run (after upstream); here",
	}
	got := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			got[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: %q\n want %q", id, got[id], w)
		}
	}
	if _, err := os.Stat(filepath.Join(e.store, "jobs")); err == nil {
		t.Error("a dry run wrote job records")
	}
	// A bad value on the command line is placed like one in the file.
	r = e.gsim("run", e.exp, "--executor", "slurm", "--dry-run", "--slurm", "time=forever")
	if r.code != 2 || !strings.Contains(r.stderr, "exp.yaml:") || !strings.Contains(r.stderr, "executor.slurm.time") {
		t.Errorf("want a positioned usage error: %s", r)
	}
}
