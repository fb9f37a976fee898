package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

const tsDir = "../../testdata/servebench/transformers-serve"

// The recipe of the recorded transformers serve sweep is what made it: its
// experiments load and validate as they are, and the workloads sweep.yaml
// generates are exactly the ones the recorded runs were checked against.
func TestTransformersServeRecipeWorkloads(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "counts"), 0o755)
	sweep, _ := filepath.Abs(filepath.Join(tsDir, "sweep.yaml"))
	r := bare(t, dir, nil, "run", sweep, "--only", "workload", "--progress", "plain")
	if r.code != 0 {
		t.Fatalf("sweep.yaml --only workload: %s", r)
	}
	for _, rate := range []string{"4", "8", "16"} {
		got, err := schema.WorkloadDigest(filepath.Join(dir, "tmp/runs/transformers-serve-h200/workload.rate@"+rate))
		if err != nil {
			t.Fatal(err)
		}
		want, err := schema.WorkloadDigest(filepath.Join(tsDir, "rate-"+rate, "workload"))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("rate %s: sweep.yaml generates workload %s, the recorded runs were made on %s", rate, got, want)
		}
	}
	warm, _ := filepath.Abs(filepath.Join(tsDir, "warmup.yaml"))
	if r := bare(t, dir, nil, "run", warm, "--only", "workload"); r.code != 0 {
		t.Fatalf("warmup.yaml --only workload: %s", r)
	}
}

// compare.yaml replays the recorded runs, fits the step model on the
// in-process ones and simulates every rate, on any machine.
func TestTransformersServeCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the recorded transformers serve comparison")
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "counts"), 0o755)
	exp, _ := filepath.Abs(filepath.Join(tsDir, "compare.yaml"))
	r := bare(t, dir, nil, "run", exp, "--progress", "plain")
	if r.code != 0 {
		t.Fatalf("compare.yaml: %s", r)
	}
	if !strings.Contains(r.stdout, "summary: 20 ran, 0 up-to-date, 0 reused, 0 failed") {
		t.Errorf("summary: %s", r.stdout)
	}
	// The report's one-line verdict (verdict.txt) names every candidate.
	for _, cand := range []string{`real-bench \(in-process\)`, `gsim step-model \(fit in-process\)`} {
		if !regexp.MustCompile(`(?m)^  .*` + cand + `: `).MatchString(r.stdout) {
			t.Errorf("no verdict for %s in:\n%s", cand, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp/runs/transformers-serve-compare/report/report.html")); err != nil {
		t.Error(err)
	}
}
