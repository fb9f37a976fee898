// Package slurmtest drives gsim against a real Slurm cluster: the single-node
// one .ci/slurm-up.sh starts (slurmctld, slurmd, slurmdbd and munge from
// Debian's packages, two fake GPUs declared in gres.conf). Nothing here mocks
// sbatch or squeue. Without a reachable cluster every test skips and says
// so; with GSIM_SLURM_REQUIRED=1 (as .ci/run sets) it fails instead.
//
// The tests share one cluster, so they run one at a time.
package slurmtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

var gsimBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gsim-slurmtest")
	if err != nil {
		panic(err)
	}
	gsimBin = filepath.Join(dir, "gsim")
	build := exec.Command("go", "build", "-o", gsimBin, "github.com/gsim-dev/gsim/cmd/gsim")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gsim:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needCluster skips (or, in CI, fails) when no Slurm cluster answers, and
// returns the node's name.
func needCluster(t testing.TB) string {
	t.Helper()
	node, problem := cluster()
	if problem != "" {
		if os.Getenv("GSIM_SLURM_REQUIRED") != "" {
			t.Fatal(problem)
		}
		t.Skip(problem)
	}
	return node
}

func cluster() (node, problem string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sinfo", "-h", "-o", "%n %T %G").CombinedOutput()
	line := strings.TrimSpace(string(out))
	if err != nil || !regexp.MustCompile(`\b(idle|mixed|allocated)\b`).MatchString(line) {
		return "", fmt.Sprintf("no usable Slurm cluster (sinfo: %v %q); start one with: sudo .ci/slurm-up.sh up", err, line)
	}
	if !strings.Contains(line, "gpu:") {
		return "", fmt.Sprintf("the cluster declares no GPUs (sinfo: %q); the stand-in GPU stages need them (.ci/slurm-up.sh declares two)", line)
	}
	// A developer's `go test ./...` on a real cluster's login node must not
	// submit jobs there (nor set a node down) unless asked to.
	if name := clusterName(); name != testClusterName && os.Getenv("GSIM_SLURM_TEST_ANY_CLUSTER") == "" {
		return "", fmt.Sprintf("the Slurm cluster here is %q, not the test cluster .ci/slurm-up.sh starts (%s); set GSIM_SLURM_TEST_ANY_CLUSTER=1 to submit the tests' small jobs to it", name, testClusterName)
	}
	return strings.Fields(line)[0], ""
}

// testClusterName is the ClusterName .ci/slurm-up.sh writes.
const testClusterName = "gsimci"

func clusterName() string {
	out, _ := exec.Command("scontrol", "show", "config").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "ClusterName" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

type env struct {
	t     *testing.T
	dir   string
	exp   string
	store string
}

func newEnv(t *testing.T, yaml string) *env {
	t.Helper()
	needCluster(t)
	dir := t.TempDir()
	e := &env{t: t, dir: dir, exp: filepath.Join(dir, "exp.yaml"), store: filepath.Join(dir, "store")}
	if err := os.WriteFile(e.exp, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cancelLeftovers)
	return e
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(gsimBin, args...)
	c.Dir = e.dir
	c.Env = append(os.Environ(), "GSIM_STORE="+e.store, "GSIM_SLOT_DIR="+filepath.Join(e.dir, "slots"))
	return c
}

type running struct {
	c      *exec.Cmd
	so, se bytes.Buffer
}

func (e *env) start(args ...string) *running {
	e.t.Helper()
	r := &running{c: e.cmd(args...)}
	r.c.Stdout, r.c.Stderr = &r.so, &r.se
	if err := r.c.Start(); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (r *running) wait(t *testing.T) result {
	t.Helper()
	err := r.c.Wait()
	res := result{stdout: r.so.String(), stderr: r.se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.code = -int(ws.Signal())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *env) gsim(args ...string) result {
	e.t.Helper()
	return e.start(args...).wait(e.t)
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.gsim(append([]string{"run", e.exp, "--executor", "slurm"}, args...)...)
}

func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("gsim run: %s", r)
	}
	return r
}

// job is one line of the cluster's queue, finished jobs included.
type job struct {
	id, name, state, dir string
}

// jobs lists every job whose attempt folder is in this test's store: the
// queue's memory of finished jobs (MinJobAge is an hour on the test
// cluster) is the history the tests count submissions in.
func (e *env) jobs() []job {
	e.t.Helper()
	out, err := exec.Command("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%Z").Output()
	if err != nil {
		e.t.Fatalf("squeue: %v", err)
	}
	var js []job
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "|")
		if len(f) == 4 && strings.HasPrefix(f[3], e.store+"/") {
			js = append(js, job{f[0], f[1], f[2], f[3]})
		}
	}
	return js
}

// submissions counts jobs per key: a job name is gsim-STAGE-KEY10-NONCE.
func (e *env) submissions() map[string]int {
	out := map[string]int{}
	for _, j := range e.jobs() {
		out[j.name[:strings.LastIndexByte(j.name, '-')]]++
	}
	return out
}

func (e *env) states() map[string]int {
	out := map[string]int{}
	for _, j := range e.jobs() {
		out[j.state]++
	}
	return out
}

// waitFor polls cond until it holds or the time is up.
func (e *env) waitFor(what string, limit time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("waited %s for %s; jobs: %v", limit, what, e.jobs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cancelLeftovers cancels this test's jobs that are still queued or
// running, so that a failed test does not hold the cluster for the next.
func (e *env) cancelLeftovers() {
	var ids []string
	for _, j := range e.jobs() {
		if j.state == "PENDING" || j.state == "RUNNING" {
			ids = append(ids, j.id)
		}
	}
	if len(ids) > 0 {
		exec.Command("scancel", ids...).Run()
	}
}

func noDuplicates(t *testing.T, subs map[string]int) {
	t.Helper()
	var dup []string
	for k, n := range subs {
		if n != 1 {
			dup = append(dup, fmt.Sprintf("%s submitted %d times", k, n))
		}
	}
	sort.Strings(dup)
	if len(dup) > 0 {
		t.Errorf("duplicate submissions: %s", strings.Join(dup, "; "))
	}
}

var commandsRE = regexp.MustCompile(`slurm: (\d+) jobs submitted.*commands: sbatch (\d+), squeue (\d+), sacct (\d+), scancel (\d+)`)

// commands reads the run's account of what it asked of Slurm.
func commands(t *testing.T, r result) (submitted, sbatch, squeue, sacct, scancel int) {
	t.Helper()
	m := commandsRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no slurm line in: %s", r)
	}
	fmt.Sscan(strings.Join(m[1:], " "), &submitted, &sbatch, &squeue, &sacct, &scancel)
	return
}

// submitted counts the jobs r submitted: none when r asked nothing of
// Slurm (a run that only waited for and reused another gsim's outputs
// prints no slurm line).
func submitted(t *testing.T, r result) int {
	t.Helper()
	if commandsRE.FindStringSubmatch(r.stdout) == nil {
		return 0
	}
	n, _, _, _, _ := commands(t, r)
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

var elapsedRE = regexp.MustCompile(`summary: .* in (\S+)`)

// elapsed reads the run's duration from its summary line.
func elapsed(t *testing.T, r result) time.Duration {
	t.Helper()
	m := elapsedRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no summary line: %s", r)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("summary duration %q: %v", m[1], err)
	}
	return d
}
