package report

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
)

// recorded is the H100 recording of Qwen3-0.6B (testdata/real, see its
// README): real runs, not fixtures.
var recorded = filepath.Join("..", "..", "testdata", "real", "h100-qwen3-0.6b")

// TestCompareRecordedRuns compares real H100 runs with each other: a run
// with its repeat and with the engine-timestamps-off variant, on the
// workload they were recorded on.
func TestCompareRecordedRuns(t *testing.T) {
	dir := filepath.Join(recorded, "rate-6")
	needs := map[string]string{"workload": filepath.Join(dir, "workload"), "run": filepath.Join(dir, "run"),
		"repeat": filepath.Join(dir, "run-repeat1"), "tsoff": filepath.Join(dir, "run-ts-off")}
	res, err := runCompare(t, compareSpec(t.TempDir(), needs, map[string]any{"reference": "run", "workload": "workload"}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.HasSteps || res.Workload == nil || res.Workload.NumRequests != 200 {
		t.Fatalf("steps %v, workload %+v", res.HasSteps, res.Workload)
	}
	for _, r := range res.Runs {
		if r.NumFailed != 0 || r.Stats[analysis.TTFT].Count != 200 {
			t.Errorf("%s: %d failed, %d TTFT samples", r.Name, r.NumFailed, r.Stats[analysis.TTFT].Count)
		}
		if gpuName(r.Hardware) != "NVIDIA H100 80GB HBM3" {
			t.Errorf("%s: GPU %q", r.Name, gpuName(r.Hardware))
		}
	}
	for _, c := range res.Candidates {
		for _, m := range res.Definitions {
			d := c.Distances[m.Key]
			if math.IsNaN(d.KS) || d.KS < 0 || d.KS > 1 || math.IsNaN(d.W1) || d.W1 < 0 {
				t.Errorf("%s %s: KS %v W1 %v", c.Name, m.Key, d.KS, d.W1)
			}
		}
	}
}

// TestCompareRecordedWrongWorkload: a real run of one rate against the
// workload of another is refused.
func TestCompareRecordedWrongWorkload(t *testing.T) {
	needs := map[string]string{"workload": filepath.Join(recorded, "rate-4", "workload"),
		"run": filepath.Join(recorded, "rate-6", "run"), "repeat": filepath.Join(recorded, "rate-6", "run-repeat1")}
	_, err := runCompare(t, compareSpec(t.TempDir(), needs, map[string]any{"reference": "run", "workload": "workload"}))
	if !errors.Is(err, analysis.ErrWorkloadDigest) {
		t.Fatalf("error = %v, want a workload digest mismatch", err)
	}
}
