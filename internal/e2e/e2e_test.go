// Package e2e drives the gsim binary as a user would: experiments made of
// shell stages, written to temp folders, run as subprocesses. Each stage
// appends a line to $COUNTS/<instance> (O_APPEND), so tests assert exactly
// which instances executed, across processes.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var gsimBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gsim-e2e")
	if err != nil {
		panic(err)
	}
	gsimBin = filepath.Join(dir, "gsim")
	// The binary is built without -race even under `go test -race`: the
	// executor's concurrency is race-tested in its own package, and a race
	// build of the whole CLI would dominate CI time.
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

// env is one test's experiment, store and counters.
type env struct {
	t      *testing.T
	dir    string
	exp    string
	store  string
	counts string
	// extraEnv is added to every gsim command's environment.
	extraEnv []string
}

func newEnv(t *testing.T, yaml string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, exp: filepath.Join(dir, "exp.yaml"), store: filepath.Join(dir, "store"), counts: filepath.Join(dir, "counts")}
	if err := os.Mkdir(e.counts, 0o755); err != nil {
		t.Fatal(err)
	}
	e.write(yaml)
	return e
}

func (e *env) write(yaml string) {
	e.t.Helper()
	if err := os.WriteFile(e.exp, []byte(yaml), 0o644); err != nil {
		e.t.Fatal(err)
	}
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
	// Each test its own machine slots: other tests on this host hold GPU slots too.
	// No GPU is visible (one counter slot, as in CI) unless a test lists some:
	// a test must not behave differently on a machine with GPUs.
	c.Env = append(os.Environ(), "GSIM_STORE="+e.store, "COUNTS="+e.counts, "TESTDIR="+e.dir, "GSIM_SLOT_DIR="+filepath.Join(e.dir, "slots"),
		"CUDA_VISIBLE_DEVICES=")
	c.Env = append(c.Env, e.extraEnv...)
	return c
}

func (e *env) gsim(args ...string) result {
	e.t.Helper()
	c := e.cmd(args...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	err := c.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// mustRun runs gsim run and fails the test on a non-zero exit.
func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.gsim(append([]string{"run", e.exp}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("gsim run %v: %s", args, r)
	}
	return r
}

// counts returns how many times each instance executed.
func (e *env) countsNow() map[string]int {
	e.t.Helper()
	ents, err := os.ReadDir(e.counts)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for _, en := range ents {
		b, _ := os.ReadFile(filepath.Join(e.counts, en.Name()))
		out[en.Name()] = strings.Count(string(b), "\n")
	}
	return out
}

// ranSince lists the instances that executed since before, sorted.
func ranSince(before, after map[string]int) []string {
	var out []string
	for id, n := range after {
		if n != before[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

var summaryRE = regexp.MustCompile(`summary: (\d+) ran, (\d+) up-to-date, (\d+) reused, (\d+) failed, (\d+) skipped`)

func summary(t *testing.T, r result) (ran, upToDate, reused, failed, skipped int) {
	t.Helper()
	m := summaryRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no summary line in: %s", r)
	}
	fmt.Sscan(m[1]+" "+m[2]+" "+m[3]+" "+m[4]+" "+m[5], &ran, &upToDate, &reused, &failed, &skipped)
	return
}

// count is the line every test stage starts with.
const count = `echo x >> "$COUNTS/$GSIM_INSTANCE"`

// pipeline: a shared stage, two cells of w → b, and a fan-in r.
const pipeline = `name: t
matrix:
  rate: [1, 2]
stages:
  s:
    uses: shell
    with:
      run: ` + count + `; echo shared-v1 > s.txt
      outputs: [s.txt]
  w:
    uses: shell
    with:
      run: ` + count + `; echo "$RATE" > w.txt
      env: {RATE: "${{ matrix.rate }}"}
      outputs: [w.txt]
  b:
    uses: shell
    needs: [w, s]
    with:
      run: ` + count + `; cat "$GSIM_INPUT_W/w.txt" "$GSIM_INPUT_S/s.txt" > b.txt; echo "$X" >> b.txt
      env: {X: 1}
      outputs: [b.txt]
  r:
    uses: shell
    needs: [{stage: b, all: true}]
    with:
      run: |
        ` + count + `
        while read -r d; do cat "$d/b.txt"; done <<< "$GSIM_INPUTS_B" > r.txt
      outputs: [r.txt]
`
