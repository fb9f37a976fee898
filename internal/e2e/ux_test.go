package e2e

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

var update = flag.Bool("update", false, "rewrite the README's quickstart figure")

// bare runs gsim in dir with no $GSIM_STORE, as a user in a fresh shell.
func bare(t *testing.T, dir string, extraEnv []string, args ...string) result {
	t.Helper()
	c := exec.Command(gsimBin, args...)
	c.Dir = dir
	c.Env = append(withoutEnv(os.Environ(), "GSIM_STORE"), append([]string{"COUNTS=" + filepath.Join(dir, "counts"),
		"GSIM_SLOT_DIR=" + filepath.Join(dir, "slots"), "CUDA_VISIBLE_DEVICES="}, extraEnv...)...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	err := c.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// Read-only commands leave no trace: no store appears where none was.
func TestReadOnlyCommandsMakeNothing(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "counts"), 0o755)
	exp := filepath.Join(dir, "exp.yaml")
	os.WriteFile(exp, []byte(pipeline), 0o644)
	before := listTree(t, dir)
	for _, args := range [][]string{{"run", "-n", exp}, {"status", exp}, {"dag", exp}, {"validate", exp}, {"clean"}, {"clean", "-n"}} {
		r := bare(t, dir, nil, args...)
		if r.code != 0 {
			t.Fatalf("gsim %v: %s", args, r)
		}
		if after := listTree(t, dir); strings.Join(after, " ") != strings.Join(before, " ") {
			t.Fatalf("gsim %v made %v", args, after)
		}
	}
	r := bare(t, dir, nil, "status", exp)
	if !strings.HasPrefix(r.stdout, "store: "+filepath.Join(dir, "tmp")+" (no store there yet)\n") {
		t.Errorf("status does not say where the store would be:\n%s", r.stdout)
	}
}

// The store is found as git finds its repository.
func TestStoreDiscovery(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "counts"), 0o755)
	exp := filepath.Join(dir, "exp.yaml")
	os.WriteFile(exp, []byte(pipeline), 0o644)
	r := bare(t, dir, nil, "run", exp)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "store: "+filepath.Join(dir, "tmp")+" (new)\n") {
		t.Fatalf("first run: %s", r)
	}
	sub := filepath.Join(dir, "a", "b")
	os.MkdirAll(sub, 0o755)
	r = bare(t, sub, nil, "run", exp)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "store: "+filepath.Join(dir, "tmp")+" (found above the current folder)\n") {
		t.Fatalf("run from a subfolder: %s", r)
	}
	if ran, upToDate, _, _, _ := summary(t, r); ran != 0 || upToDate != 6 {
		t.Errorf("run from a subfolder did not reuse the store above: %s", r)
	}
	if _, err := os.Stat(filepath.Join(sub, "tmp")); !os.IsNotExist(err) {
		t.Errorf("a store was made in the subfolder: %v", err)
	}
	r = bare(t, sub, nil, "run", "-n", exp)
	if !strings.HasPrefix(r.stdout, "store: "+filepath.Join(dir, "tmp")+" (found above") {
		t.Errorf("dry run: %s", r)
	}
	other := filepath.Join(dir, "elsewhere")
	r = bare(t, sub, []string{"GSIM_STORE=" + other}, "status", exp)
	if !strings.HasPrefix(r.stdout, "store: "+other+" (from $GSIM_STORE; no store there yet)\n") {
		t.Errorf("$GSIM_STORE: %s", r)
	}
	r = bare(t, sub, []string{"GSIM_STORE=" + other}, "status", exp, "--store", filepath.Join(dir, "tmp"))
	if !strings.HasPrefix(r.stdout, "store: "+filepath.Join(dir, "tmp")+" (from --store)\n") || !strings.Contains(r.stdout, "up-to-date") {
		t.Errorf("--store: %s", r)
	}
}

func TestMistypedStageSuggests(t *testing.T) {
	e := newEnv(t, pipeline)
	r := e.gsim("run", e.exp, "--only", "ww")
	if r.code != 2 || !strings.Contains(r.stderr, `--only ww: no such stage (did you mean "w"?); stages: b, r, s, w`) {
		t.Errorf("got %s", r)
	}
}

// The quickstart ends by saying where its answer is, and gsim open finds it.
func TestRunEndsWithReportAndVerdict(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quickstart")
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "counts"), 0o755)
	exp, _ := filepath.Abs("../../experiments/quickstart.yaml")
	r := bare(t, dir, nil, "run", exp, "--progress", "plain")
	if r.code != 0 {
		t.Fatalf("quickstart: %s", r)
	}
	report := "tmp/runs/quickstart/report/report.html"
	if !strings.Contains(r.stdout, "\nreport: "+report+"\n") {
		t.Fatalf("no report line: %s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, report)); err != nil {
		t.Fatal(err)
	}
	// The report's verdict.txt: one line naming every candidate against
	// the rerun band of the two recorded sweeps.
	verdicts := regexp.MustCompile(`(?m)^  gsim step-model: indistinguishable from a rerun in \d+ of 6 cells.*; gsim vidur-profile: .*$`).FindAllString(r.stdout, -1)
	if len(verdicts) != 1 {
		t.Errorf("want the report's one-line verdict naming both candidates, got %q in:\n%s", verdicts, r.stdout)
	}
	if !strings.Contains(r.stdout, "open it: gsim open "+exp+" --browser\n") {
		t.Errorf("no hint to open it: %s", r.stdout)
	}
	// Finished lines carry the overall count.
	if !strings.Contains(r.stderr, "report done in") || !strings.Contains(r.stderr, "(39/39 done)") {
		t.Errorf("plain progress lacks the count: %s", r.stderr)
	}

	// The README's picture is this report's figure, byte for byte.
	fig, err := os.ReadFile(filepath.Join(dir, "tmp/runs/quickstart/report/figs/ttft_p50_vs_rate.png"))
	if err != nil {
		t.Fatal(err)
	}
	const readmeFig = "../../docs/img/quickstart-ttft-p50.png"
	if *update {
		if err := os.WriteFile(readmeFig, fig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if old, err := os.ReadFile(readmeFig); err != nil || !bytes.Equal(old, fig) {
		t.Errorf("%s is not the quickstart report's figs/ttft_p50_vs_rate.png (the figure code or the data changed): "+
			"go test ./internal/e2e -run TestRunEndsWithReportAndVerdict -update rewrites it", readmeFig)
	}

	r = bare(t, dir, nil, "open")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "report ") || !strings.Contains(r.stdout, "tmp/runs/quickstart/compare.rate@14/report.html") {
		t.Fatalf("gsim open: %s", r)
	}
	opened := filepath.Join(dir, "opened")
	browser := filepath.Join(dir, "browser")
	os.WriteFile(browser, []byte("#!/bin/sh\necho \"$1\" > "+opened+"\n"), 0o755)
	r = bare(t, dir, []string{"BROWSER=" + browser}, "open", "quickstart", "compare[rate=4]", "--browser")
	if r.code != 0 {
		t.Fatalf("gsim open --browser: %s", r)
	}
	b, _ := os.ReadFile(opened)
	if want := "file://" + filepath.Join(dir, "tmp/runs/quickstart/compare.rate@4/report.html"); strings.TrimSpace(string(b)) != want {
		t.Errorf("browser got %q, want %q", b, want)
	}
}

// ptyRun runs gsim on a pseudo-terminal of the given size (0 columns: a
// terminal that does not know its width, as under `script -qc`) and
// returns what the terminal showed.
func ptyRun(t *testing.T, dir string, cols uint16, args ...string) string {
	t.Helper()
	c := exec.Command(gsimBin, args...)
	c.Dir = dir
	c.Env = append(withoutEnv(os.Environ(), "GSIM_STORE"), "COUNTS="+filepath.Join(dir, "counts"), "GSIM_SLOT_DIR="+filepath.Join(dir, "slots"),
		"TERM=xterm", "CUDA_VISIBLE_DEVICES=")
	var f *os.File
	var err error
	if cols > 0 {
		f, err = pty.StartWithSize(c, &pty.Winsize{Rows: 40, Cols: cols})
	} else {
		f, err = pty.Start(c)
	}
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer f.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, f); close(done) }()
	if err := c.Wait(); err != nil {
		t.Fatalf("gsim %v on a terminal: %v\n%s", args, err, out.String())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return out.String()
}

// slowPipeline has stages that take long enough to be drawn.
const slowPipeline = `name: slow
matrix:
  i: [1, 2, 3]
stages:
  quiet:
    uses: shell
    with: {run: 'sleep 0.6; echo q > q.txt', outputs: [q.txt]}
  counted:
    uses: shell
    needs: [quiet]
    with:
      run: |
        for k in 1 2 3 4; do echo "##gsim progress $k 4 steps"; sleep 0.15; done
        echo c > c.txt
      env: {I: "${{ matrix.i }}"}
      outputs: [c.txt]
`

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// On a terminal: one live region with the overall counter and bars for
// running stages, no line per finished stage.
func TestProgressOnATerminal(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "counts"), 0o755)
	exp := filepath.Join(dir, "exp.yaml")
	os.WriteFile(exp, []byte(slowPipeline), 0o644)
	screen := ansiRE.ReplaceAllString(ptyRun(t, dir, 120, "run", exp), "")
	for _, want := range []string{"stages 0/4 done, 1 running", "quiet", "counted[i=", "steps", "stages 4/4 done", "summary: 4 ran"} {
		if !strings.Contains(screen, want) {
			t.Errorf("terminal output lacks %q:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, "done in") || strings.Contains(screen, " started") {
		t.Errorf("per-stage lines were printed into the live region:\n%s", screen)
	}
}

// A terminal that does not know its width gets plain timestamped lines.
func TestProgressOnATerminalOfUnknownWidth(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "counts"), 0o755)
	exp := filepath.Join(dir, "exp.yaml")
	os.WriteFile(exp, []byte(slowPipeline), 0o644)
	screen := ptyRun(t, dir, 0, "run", exp)
	if !regexp.MustCompile(`(?m)^\S+Z quiet done in \S+ \(1/4 done\)\r?$`).MatchString(screen) {
		t.Errorf("want plain timestamped lines:\n%s", screen)
	}
	if strings.Contains(screen, "\x1b[") {
		t.Errorf("escape sequences on a terminal of unknown width:\n%q", screen)
	}
}

// A request refused for a usage error makes no store either.
func TestBadRequestMakesNoStore(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "exp.yaml")
	os.WriteFile(exp, []byte(pipeline), 0o644)
	for _, args := range [][]string{{"run", exp, "--only", "ww"}, {"run", exp, "--progress", "fancy"}, {"run", exp, "--gpus", "x"}} {
		if r := bare(t, dir, nil, args...); r.code != 2 {
			t.Errorf("gsim %v: %s", args, r)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp")); !os.IsNotExist(err) {
		t.Errorf("a refused run made a store: %v", err)
	}
}
