package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// noiseCells compares, per rate, a bench run with two reruns (copies of the
// fixture's sim and bench runs: a wide band) against a candidate that is a
// copy of the bench run, with the bench instances named per cell.
func noiseCells(t *testing.T, rates []float64) []stage.Input {
	t.Helper()
	var ins []stage.Input
	for i, rate := range rates {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		writeFixtureSet(t, dir, 40, rate, rate)
		copyDir(t, filepath.Join(dir, "bench"), filepath.Join(dir, "copy"))
		cell := map[string]any{"rate": rate}
		inst := "compare[" + cellString(cell) + "]"
		spec := &stage.Spec{Stage: "compare", Instance: inst, Kind: "compare", Key: fmt.Sprintf("cmpkey%02d", i),
			Params: map[string]any{"reference": "bench", "workload": "workload", "candidates": []any{"copy"},
				"labels": map[string]any{"bench": "real", "copy": "model"}},
			Matrix: cell, OutDir: filepath.Join(dir, "out"), Inputs: map[string][]stage.Input{
				"workload": {{Instance: "workload", Dir: filepath.Join(dir, "workload")}},
				"copy":     {{Instance: "copy", Dir: filepath.Join(dir, "copy")}},
				"bench": {
					{Instance: fmt.Sprintf("bench[rate=%v,repeat=1]", rate), Dir: filepath.Join(dir, "bench")},
					{Instance: fmt.Sprintf("bench[rate=%v,repeat=2]", rate), Dir: filepath.Join(dir, "sim")},
				},
			}}
		if _, err := runCompare(t, spec); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, stage.Input{Instance: inst, Kind: "compare", Key: spec.Key, Dir: spec.OutDir, Matrix: cell})
	}
	return ins
}

// The sweep report marks the cells the fit trained on (from its own
// training_cells), carries the rerun bands, links each cell's report and
// writes its one-line verdict to verdict.txt and sweep.json.
func TestSweepBandsTrainedAndVerdict(t *testing.T) {
	ins := noiseCells(t, []float64{1, 2, 4})
	fit := t.TempDir()
	sm := `{"schema_version": 3, "training_cells": [{"instance": "bench[rate=2,repeat=2]", "steps": 10}]}`
	if err := os.WriteFile(filepath.Join(fit, "step_model.json"), []byte(sm), 0o644); err != nil {
		t.Fatal(err)
	}
	ins = append(ins, stage.Input{Instance: "fit", Kind: "fit", Dir: fit})
	out, err := runSweep(t, ins, map[string]any{"x": "rate", "slo": map[string]any{"ttft_p99_ms": 50}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, SweepFile))
	if err != nil {
		t.Fatal(err)
	}
	var res SweepResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.XAxis != "rate (req/s)" {
		t.Errorf("x axis %q, want the unit", res.XAxis)
	}
	var trained []string
	for _, c := range res.Cells {
		if c.Trained {
			trained = append(trained, c.X)
		}
		if !strings.HasPrefix(c.Report, "../compare%5Brate=") || !strings.HasSuffix(c.Report, "%5D/report.html") {
			t.Errorf("cell %s links %q", c.Instance, c.Report)
		}
	}
	if strings.Join(trained, ",") != "2" {
		t.Errorf("trained cells %v, want only rate 2 (its rerun is a training run)", trained)
	}
	line, _ := os.ReadFile(filepath.Join(out, VerdictFile))
	if got := strings.TrimSuffix(string(line), "\n"); got != res.Verdict || strings.Contains(got, "\n") ||
		!strings.Contains(got, "model: indistinguishable from a rerun in 3 of 3 cells") {
		t.Errorf("verdict.txt %q, sweep.json %q", line, res.Verdict)
	}
	sum, _ := os.ReadFile(filepath.Join(out, "summary.md"))
	for _, want := range []string{"| 2 (trained) |", "rerun band", "✓", "[report](../compare%5Brate=1%5D/report.html)", "CDFs per cell"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary.md lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "tables", "bands.csv")); err != nil {
		t.Error(err)
	}
}
