package report

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// A candidate identical to the reference sits inside any rerun band and at
// distance 0: it must be called indistinguishable from a rerun.
func TestCompareNoiseIdenticalCandidate(t *testing.T) {
	ensureFixtures(t)
	tmp := t.TempDir()
	copyDir(t, fixtureDir("bench"), filepath.Join(tmp, "copy"))
	spec := compareSpec(filepath.Join(tmp, "out"),
		map[string]string{"bench": fixtureDir("bench"), "copy": filepath.Join(tmp, "copy"), "workload": fixtureDir("workload"),
			"rerun": fixtureDir("sim")},
		map[string]any{"reference": "bench", "workload": "workload", "candidates": []any{"copy"}, "reruns": []any{"rerun"}})
	res, err := runCompare(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Noise == nil || res.Noise.Runs != 2 || len(res.Reruns) != 1 || res.Reruns[0].Name != "bench#2" {
		t.Fatalf("noise %+v, reruns %+v", res.Noise, res.Reruns)
	}
	c := res.Candidates[0]
	for _, m := range []string{analysis.TTFT, analysis.TPOT, analysis.E2E} {
		for _, st := range []string{analysis.StatP50, analysis.StatP90} {
			if !c.Noise.Within[m][st] {
				t.Errorf("%s %s: an identical candidate is outside the band", m, st)
			}
		}
		if r := c.Noise.Ratio[m].W1; r != 0 {
			t.Errorf("%s: W1 ratio %v, want 0", m, r)
		}
	}
	if c.Verdict == nil || !c.Verdict.Indistinguishable || !strings.Contains(res.Verdict, "indistinguishable") {
		t.Errorf("verdict %+v / %q", c.Verdict, res.Verdict)
	}
	for _, f := range []string{"tables/noise.csv", "summary.md"} {
		b, err := os.ReadFile(filepath.Join(tmp, "out", f))
		if err != nil || !strings.Contains(string(b), "copy") {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The recorded H100 rate-6 runs: the reference stage's repeats arrive as
// several inputs of one need; the band spans all three and a candidate far
// off (the timestamps-off run, a slow-regime run) is flagged.
func TestCompareNoiseRecordedRepeats(t *testing.T) {
	dir := filepath.Join(recorded, "rate-6")
	out := t.TempDir()
	spec := compareSpec(out, map[string]string{"workload": filepath.Join(dir, "workload"), "tsoff": filepath.Join(dir, "run-ts-off")},
		map[string]any{"reference": "real", "workload": "workload"})
	spec.Inputs["real"] = []stage.Input{
		{Instance: "real[rate=6,repeat=1]", Kind: "replay", Dir: filepath.Join(dir, "run"), Matrix: map[string]any{"rate": 6, "repeat": 1}},
		{Instance: "real[rate=6,repeat=2]", Kind: "replay", Dir: filepath.Join(dir, "run-repeat1"), Matrix: map[string]any{"rate": 6, "repeat": 2}},
		{Instance: "real[rate=6,repeat=3]", Kind: "replay", Dir: filepath.Join(dir, "run-repeat2"), Matrix: map[string]any{"rate": 6, "repeat": 3}},
	}
	res, err := runCompare(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Noise == nil || res.Noise.Runs != 3 || len(res.Reruns) != 2 {
		t.Fatalf("noise %+v, %d reruns", res.Noise, len(res.Reruns))
	}
	for _, m := range []string{analysis.TTFT, analysis.TPOT, analysis.E2E} {
		for _, st := range []string{analysis.StatP50, analysis.StatP90, analysis.StatP99} {
			b := res.Noise.Bands[m][st]
			ref := res.Runs[0].Stats[m].Get(st)
			if !b.Defined() || float64(b.Lo) > ref || float64(b.Hi) < ref || b.MinCount != 200 || b.Runs != 3 {
				t.Errorf("%s %s: band %+v does not hold the reference %v", m, st, b, ref)
			}
		}
		if d := res.Noise.Rerun[m]; math.IsNaN(d.W1) || d.W1 <= 0 {
			t.Errorf("%s: rerun W1 %v", m, d.W1)
		}
	}
	v := res.Candidates[0].Verdict
	// The timestamps-off run at 6 req/s landed in the engine's slow regime
	// (TTFT P50 112 ms against 50-52 ms): it must not pass as a rerun, and
	// the P99 band of 200 requests is too thin to hold it to.
	if v == nil || v.Indistinguishable || v.Held != 9 || !strings.Contains(v.Sentence, "P99 not held") {
		t.Errorf("verdict %+v", v)
	}
	if !strings.Contains(v.Misses[0], "TTFT") && !strings.Contains(v.Misses[0], "TPOT") {
		t.Errorf("worst miss %q, want a TTFT or TPOT statistic first", v.Misses[0])
	}
}

func TestCompareRerunsParamErrors(t *testing.T) {
	for _, params := range []map[string]any{
		{"reference": "a", "reruns": []any{"a"}},
		{"reference": "a", "candidates": []any{"b"}, "reruns": []any{"b"}},
	} {
		if err := (CompareKind{}).CheckParams(params); err == nil || !strings.Contains(err.Error(), "reruns") {
			t.Errorf("%v: %v, want a reruns error", params, err)
		}
	}
	err := (CompareKind{}).CheckNeeds(map[string]any{"reference": "a", "reruns": []any{"x"}}, []string{"a", "b"}, nil)
	if err == nil || !strings.Contains(err.Error(), "reruns.0") {
		t.Errorf("unknown rerun need: %v", err)
	}
}
