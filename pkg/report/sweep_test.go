package report

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// sweepCells runs compare on fixture runs for each matrix cell and returns
// the compare output folders as fan-in inputs.
func sweepCells(t *testing.T, cells []map[string]any) []stage.Input {
	t.Helper()
	var ins []stage.Input
	for i, cell := range cells {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		rate := cell["rate"].(float64)
		load := rate
		if p, ok := cell["policy"]; ok && p == "sarathi" {
			load *= 0.5
		}
		writeFixtureSet(t, dir, 40, rate, load)
		inst := "compare[" + cellString(cell) + "]"
		spec := &stage.Spec{Stage: "compare", Instance: inst, Kind: "compare", Key: fmt.Sprintf("cmpkey%02d", i),
			Params: map[string]any{"reference": "bench", "workload": "workload", "labels": map[string]any{"bench": "H100 (real)", "sim": "gsim", "vidur": "Vidur"}},
			Matrix: cell, OutDir: filepath.Join(dir, "out"), Inputs: map[string][]stage.Input{}}
		for _, n := range []string{"workload", "bench", "sim", "vidur"} {
			spec.Inputs[n] = []stage.Input{{Instance: n, Key: "k-" + n, Dir: filepath.Join(dir, n)}}
		}
		if _, err := runCompare(t, spec); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, stage.Input{Instance: inst, Kind: "compare", Key: spec.Key, Dir: spec.OutDir, Matrix: cell})
	}
	return ins
}

func runSweep(t *testing.T, ins []stage.Input, params map[string]any) (string, error) {
	t.Helper()
	k := SweepKind{}
	if err := k.CheckParams(params); err != nil {
		t.Fatalf("CheckParams: %v", err)
	}
	out := t.TempDir()
	spec := &stage.Spec{Experiment: "fixture", Stage: "report", Instance: "report", Kind: "report", Key: "sweepkey",
		Params: params, Inputs: map[string][]stage.Input{"compare": ins}, OutDir: out}
	if err := k.Run(context.Background(), spec, stage.Env{}); err != nil {
		return out, err
	}
	return out, k.Validate(spec)
}

func TestSweepGolden(t *testing.T) {
	var cells []map[string]any
	for _, r := range []float64{4, 1, 2} { // out of order on purpose: the report sorts by x
		cells = append(cells, map[string]any{"rate": r})
	}
	ins := sweepCells(t, cells)
	out, err := runSweep(t, ins, map[string]any{"x": "rate", "slo": map[string]any{"ttft_p99_ms": 50}, "title": "Fixture sweep"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"summary.md", "tables/latency.csv", "tables/errors.csv", "tables/capacity.csv", VerdictFile} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, filepath.Join("sweep", f), b)
	}
	figs, _ := filepath.Glob(filepath.Join(out, "figs", "*.png"))
	if len(figs) != 12 {
		t.Errorf("%d figures, want 12 (P50/P90/P99 of TTFT and TPOT, and each cell's TTFT and TPOT CDFs): %v", len(figs), figs)
	}
	capCSV, _ := os.ReadFile(filepath.Join(out, "tables", "capacity.csv"))
	for _, want := range []string{",bench,2,", ",sim,4,", ",vidur,1,"} {
		if !strings.Contains(string(capCSV), want) {
			t.Errorf("capacity.csv lacks %q:\n%s", want, capCSV)
		}
	}
}

func TestSweepGroups(t *testing.T) {
	var cells []map[string]any
	for _, p := range []string{"vllm", "sarathi"} {
		for _, r := range []float64{1, 2} {
			cells = append(cells, map[string]any{"rate": r, "policy": p})
		}
	}
	out, err := runSweep(t, sweepCells(t, cells), map[string]any{"x": "rate"})
	if err != nil {
		t.Fatal(err)
	}
	figs, _ := filepath.Glob(filepath.Join(out, "figs", "*.png"))
	if len(figs) != 20 {
		t.Errorf("%d figures, want 20 (6 per policy and 2 CDFs per cell)", len(figs))
	}
	sum, _ := os.ReadFile(filepath.Join(out, "summary.md"))
	for _, g := range []string{"## Group policy=sarathi", "## Group policy=vllm"} {
		if !strings.Contains(string(sum), g) {
			t.Errorf("summary.md lacks %q", g)
		}
	}
}

func TestSweepErrors(t *testing.T) {
	ins := sweepCells(t, []map[string]any{{"rate": 1.0}})
	if _, err := runSweep(t, ins, map[string]any{"x": "qps"}); err == nil || !strings.Contains(err.Error(), `no matrix value "qps"`) {
		t.Errorf("unknown x: %v", err)
	}
	var pe *stage.ParamError
	for _, p := range []map[string]any{{}, {"x": "rate", "slo": map[string]any{}}, {"x": "rate", "slo": map[string]any{"ttft_p99": 1}}} {
		if err := (SweepKind{}).CheckParams(p); !errors.As(err, &pe) {
			t.Errorf("CheckParams(%v) = %v, want a ParamError", p, err)
		}
	}
}

func TestCapacity(t *testing.T) {
	mk := func(p99s ...float64) *Group {
		g := &Group{}
		for i, v := range p99s {
			r := &Result{Runs: []RunResult{{Name: "a", Stats: map[string]analysisSummary{}}}}
			r.Runs[0].Stats["ttft"] = summaryWithP99(v)
			g.Cells = append(g.Cells, r)
			g.X = append(g.X, float64(i+1))
		}
		return g
	}
	slo := &SLO{TTFTP99Ms: 100}
	cases := []struct {
		p99  []float64
		want float64
	}{
		{[]float64{10, 50, 200}, 2},
		{[]float64{10, 50, 90}, 3},
		{[]float64{150, 200}, math.NaN()},
		{[]float64{10, 150, 90}, 3}, // highest passing x, not the first failure
	}
	for _, c := range cases {
		got, _ := capacity(mk(c.p99...), "a", slo)
		if got != c.want && !(math.IsNaN(got) && math.IsNaN(c.want)) {
			t.Errorf("capacity(%v) = %v, want %v", c.p99, got, c.want)
		}
	}
}

type analysisSummary = analysis.Summary

func summaryWithP99(v float64) analysisSummary { return analysisSummary{Count: 1, P99: v} }

func TestSweepCheckNeeds(t *testing.T) {
	tests := []struct {
		name   string
		x      string
		matrix map[string][]any
		want   string
	}{
		{"ok", "rate", map[string][]any{"policy": {"a"}, "rate": {1}}, ""},
		{"typo", "rat", map[string][]any{"policy": {"a"}, "rate": {1}}, `with.x: "rat" is not a matrix variable (the matrix has policy, rate)`},
		{"no matrix", "rate", nil, `with.x: "rate": the experiment has no matrix`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SweepKind{}.CheckNeeds(map[string]any{"x": tt.x}, []string{"compare"}, tt.matrix)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
