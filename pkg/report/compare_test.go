package report

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// checkGolden compares got with testdata/golden/<name>, or rewrites it.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/report -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file; diff it with the output, and rerun with -update if the change is intended.\n--- got ---\n%s", path, got)
	}
}

func compareSpec(out string, needs map[string]string, params map[string]any) *stage.Spec {
	s := &stage.Spec{SchemaVersion: stage.SpecVersion, Stage: "compare", Instance: "compare[rate=2]", Kind: "compare",
		Key: "0123456789abcdef0123", Params: params, Matrix: map[string]any{"rate": 2}, Inputs: map[string][]stage.Input{}, OutDir: out}
	for need, dir := range needs {
		s.Inputs[need] = []stage.Input{{Instance: need + "[rate=2]", Kind: need, Key: "key-of-" + need, Dir: dir}}
	}
	return s
}

func runCompare(t *testing.T, spec *stage.Spec) (*Result, error) {
	t.Helper()
	k := CompareKind{}
	if err := k.CheckParams(spec.Params); err != nil {
		t.Fatalf("CheckParams: %v", err)
	}
	var log strings.Builder
	if err := k.Run(context.Background(), spec, stage.Env{Log: &log}); err != nil {
		return nil, err
	}
	if err := k.Validate(spec); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return ReadResult(spec.OutDir)
}

func TestCompareGolden(t *testing.T) {
	ensureFixtures(t)
	cases := []struct {
		name   string
		needs  []string
		params map[string]any
		steps  bool
	}{
		{"with_workload", []string{"workload", "bench", "sim"},
			map[string]any{"reference": "bench", "workload": "workload", "labels": map[string]any{"bench": "H100 (real)", "sim": "gsim embedded"}}, true},
		{"three_runs", []string{"bench", "sim", "vidur"}, map[string]any{"reference": "bench", "title": "Three runs, no workload folder"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needs := map[string]string{}
			for _, n := range c.needs {
				needs[n] = fixtureDir(n)
			}
			out := t.TempDir()
			res, err := runCompare(t, compareSpec(out, needs, c.params))
			if err != nil {
				t.Fatal(err)
			}
			if res.HasSteps != c.steps {
				t.Errorf("HasSteps = %v, want %v", res.HasSteps, c.steps)
			}
			files := []string{"summary.md", "tables/stats.csv", "tables/errors.csv", "tables/distances.csv", "tables/failed.csv"}
			if c.steps {
				files = append(files, "tables/batch.csv")
			} else if _, err := os.Stat(filepath.Join(out, "tables/batch.csv")); err == nil {
				t.Error("batch.csv written although a run has no step_metrics.csv")
			}
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(out, f))
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, filepath.Join(c.name, f), b)
			}
			sim := res.Run("sim")
			if sim.NumFailed != 1 || len(sim.Failed) != 1 || sim.Failed[0].RequestID != 5 {
				t.Errorf("sim failed requests = %+v, want request 5", sim.Failed)
			}
			if sim.Stats[analysis.TTFT].Count != sim.NumRequests-1 {
				t.Errorf("failed request not excluded: TTFT count %d of %d requests", sim.Stats[analysis.TTFT].Count, sim.NumRequests)
			}
			if res.Runs[0].TPOTExcluded != 1 {
				t.Errorf("TPOT excluded = %d, want 1 (request 0 has one output token)", res.Runs[0].TPOTExcluded)
			}
			html, _ := os.ReadFile(filepath.Join(out, "report.html"))
			if n := strings.Count(string(html), `<img src="data:image/png;base64,`); n < 4 {
				t.Errorf("report.html has %d inline images, want >= 4", n)
			}
			if strings.Contains(string(html), "http://") || strings.Contains(string(html), "https://") {
				t.Error("report.html references an external URL")
			}
		})
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompareIdenticalRuns(t *testing.T) {
	ensureFixtures(t)
	tmp := t.TempDir()
	copyDir(t, fixtureDir("bench"), filepath.Join(tmp, "copy"))
	res, err := runCompare(t, compareSpec(filepath.Join(tmp, "out"),
		map[string]string{"bench": fixtureDir("bench"), "copy": filepath.Join(tmp, "copy"), "workload": fixtureDir("workload")},
		map[string]any{"reference": "bench", "workload": "workload"}))
	if err != nil {
		t.Fatal(err)
	}
	c := res.Candidates[0]
	for _, m := range res.Definitions {
		for _, st := range analysis.StatNames {
			if e := float64(c.RelErrors[m.Key][st]); e != 0 {
				t.Errorf("%s %s: relative error %v, want 0", m.Key, st, e)
			}
		}
		if d := c.Distances[m.Key]; d.KS != 0 || d.W1 != 0 {
			t.Errorf("%s: KS %v W1 %v, want 0", m.Key, d.KS, d.W1)
		}
	}
	sum, _ := os.ReadFile(filepath.Join(tmp, "out", "summary.md"))
	if !strings.Contains(string(sum), "matches bench within 2.0%") {
		t.Errorf("verdict does not say the runs match:\n%s", sum)
	}
}

// TestCompareChecks breaks one thing in a copy of the sim run and expects
// the matching error, naming the run folder.
func TestCompareChecks(t *testing.T) {
	ensureFixtures(t)
	w, err := schema.ReadWorkload(fixtureDir("workload"))
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := schema.WorkloadDigest(fixtureDir("workload"))
	cases := []struct {
		name     string
		engine   func(e engine) engine
		workload bool
		want     error
	}{
		{"digest vs workload", func(e engine) engine { e.digest = strings.Repeat("f", 64); return e }, true, analysis.ErrWorkloadDigest},
		{"digest vs reference", func(e engine) engine { e.digest = strings.Repeat("f", 64); return e }, false, analysis.ErrWorkloadDigest},
		{"missing request", func(e engine) engine { e.dropID = 3; return e }, false, analysis.ErrRequestSet},
		{"missing request vs workload", func(e engine) engine { e.dropID = 3; return e }, true, analysis.ErrRequestSet},
		{"token counts", func(e engine) engine { e.prefillAt = 2; return e }, false, analysis.ErrTokenCounts},
		{"token counts vs workload", func(e engine) engine { e.prefillAt = 2; return e }, true, analysis.ErrTokenCounts},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			bad := filepath.Join(tmp, "sim")
			writeFixtureRun(t, bad, w, digest, c.engine(simEngine), 1)
			needs := map[string]string{"bench": fixtureDir("bench"), "sim": bad}
			params := map[string]any{"reference": "bench"}
			if c.workload {
				needs["workload"] = fixtureDir("workload")
				params["workload"] = "workload"
			}
			_, err := runCompare(t, compareSpec(filepath.Join(tmp, "out"), needs, params))
			if !errors.Is(err, c.want) {
				t.Fatalf("error = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "rerun") {
				t.Errorf("error does not name the run folder %s and what to do: %v", bad, err)
			}
		})
	}
}

func TestCompareParams(t *testing.T) {
	k := CompareKind{}
	bad := []map[string]any{
		{},
		{"reference": "bench", "workload": "bench"},
		{"reference": "bench", "typo": 1},
		{"reference": "bench", "candidates": []any{"sim", "sim"}},
		{"reference": "bench", "candidates": []any{"bench"}},
	}
	for _, p := range bad {
		var pe *stage.ParamError
		if err := k.CheckParams(p); !errors.As(err, &pe) {
			t.Errorf("CheckParams(%v) = %v, want a *stage.ParamError", p, err)
		}
	}
	spec := compareSpec(t.TempDir(), map[string]string{"bench": "x"}, map[string]any{"reference": "bench"})
	if _, err := compareInput(spec); err == nil || !strings.Contains(err.Error(), "no candidate") {
		t.Errorf("no candidates: %v", err)
	}
	spec = compareSpec(t.TempDir(), map[string]string{"bench": "x", "sim": "y", "vidur": "z", "profile": "p"},
		map[string]any{"reference": "bench", "candidates": []any{"vidur", "sim"}})
	if ci, err := compareInput(spec); err != nil || len(ci.Candidates) != 2 || ci.Candidates[0].Name != "vidur" {
		t.Errorf("explicit candidates: %+v, %v", ci.Candidates, err)
	}
	spec = compareSpec(t.TempDir(), map[string]string{"bench": "x", "sim": "y"}, map[string]any{"reference": "bench", "candidates": []any{"vidur"}})
	if _, err := compareInput(spec); err == nil || !strings.Contains(err.Error(), `with.candidates: "vidur" is not among the stage's needs (bench, sim); add it to needs: or fix with.candidates`) {
		t.Errorf("unknown candidate: %v", err)
	}
	spec = compareSpec(t.TempDir(), map[string]string{"bench": "x", "sim": "y"}, map[string]any{"reference": "real"})
	if _, err := compareInput(spec); err == nil || !strings.Contains(err.Error(), `with.reference: "real" is not among the stage's needs (bench, sim); add it to needs: or fix with.reference`) {
		t.Errorf("unknown reference: %v", err)
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	ensureFixtures(t)
	out := t.TempDir()
	res, err := runCompare(t, compareSpec(out, map[string]string{"bench": fixtureDir("bench"), "vidur": fixtureDir("vidur")}, map[string]any{"reference": "bench"}))
	if err != nil {
		t.Fatal(err)
	}
	// Rel error of min count etc. are finite; a NaN must come back as NaN.
	if e := res.Candidates[0].RelErrors[analysis.TTFT][analysis.StatP99]; math.IsNaN(float64(e)) {
		t.Error("P99 TTFT error lost in compare.json")
	}
	if res.Matrix["rate"] != float64(2) {
		t.Errorf("matrix cell = %v", res.Matrix)
	}
}

func TestGPUName(t *testing.T) {
	cases := []struct {
		h    map[string]any
		want string
	}{
		{map[string]any{"gpu_name": "NVIDIA H100 80GB HBM3", "driver": "550"}, "NVIDIA H100 80GB HBM3"},
		{map[string]any{"device": "h100", "simulated_by": "vidur"}, "h100 (simulated)"},
		{map[string]any{"name": "", "simulated": true}, "(simulated)"},
		{map[string]any{"gpu_name": "", "name": "a100"}, "a100"},
		{nil, ""},
	}
	for _, c := range cases {
		if got := gpuName(c.h); got != c.want {
			t.Errorf("gpuName(%v) = %q, want %q", c.h, got, c.want)
		}
	}
}

// A wrong need name was found only when compare ran, after every upstream
// stage; CheckNeeds lets the loader report it at its YAML line.
func TestCompareCheckNeeds(t *testing.T) {
	needs := []string{"workload", "real", "sim"}
	tests := []struct {
		name     string
		params   map[string]any
		wantPath string
	}{
		{"ok", map[string]any{"reference": "real", "workload": "workload", "candidates": []any{"sim"}, "labels": map[string]any{"sim": "S"}}, ""},
		{"reference", map[string]any{"reference": "reall"}, "reference"},
		{"workload", map[string]any{"reference": "real", "workload": "wl"}, "workload"},
		{"candidate", map[string]any{"reference": "real", "candidates": []any{"sim", "sim-prof"}}, "candidates.1"},
		{"label", map[string]any{"reference": "real", "labels": map[string]any{"vidur": "V"}}, "labels.vidur"},
		{"bad params left to CheckParams", map[string]any{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CompareKind{}.CheckNeeds(tt.params, needs, map[string][]any{"rate": {2}})
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var pe *stage.ParamError
			if !errors.As(err, &pe) || pe.Path != tt.wantPath || !strings.Contains(pe.Msg, "is not among the stage's needs (workload, real, sim)") {
				t.Fatalf("got %v, want a with.%s error listing the needs", err, tt.wantPath)
			}
		})
	}
}
