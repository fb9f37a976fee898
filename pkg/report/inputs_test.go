package report

import (
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// compare finds its workload as the need that holds one, whatever its name,
// and by default compares every other need that holds a run: a profile or a
// second workload among the needs is neither a candidate nor the workload.
// Before, the workload was read only when with.workload named it, and every
// need but the reference and that one was taken for a candidate run.
func TestCompareFindsInputsByWhatTheyHold(t *testing.T) {
	in := func(name, kind, holds string) []stage.Input {
		return []stage.Input{{Instance: name, Kind: kind, Holds: holds, Key: "k-" + name, Dir: "/store/" + name}}
	}
	spec := &stage.Spec{Instance: "compare", Params: map[string]any{"reference": "real"}, Inputs: map[string][]stage.Input{
		"h1-workload": in("h1-workload", "workload", stage.HoldsWorkload),
		"real":        in("real", "replay", stage.HoldsRun),
		"sim":         in("sim", "sim", stage.HoldsRun),
		"vidur":       in("vidur", "vidur", stage.HoldsRun),
		"profile":     in("profile", "profile", stage.HoldsProfile),
	}}
	ci, err := compareInput(spec)
	if err != nil {
		t.Fatal(err)
	}
	if ci.WorkloadDir != "/store/h1-workload" || ci.Reference.Name != "real" {
		t.Errorf("workload %q, reference %q", ci.WorkloadDir, ci.Reference.Name)
	}
	var names []string
	for _, c := range ci.Candidates {
		names = append(names, c.Name)
	}
	if len(names) != 2 || names[0] != "sim" || names[1] != "vidur" {
		t.Errorf("candidates %v, want [sim vidur]", names)
	}
	// Two workloads: with.workload chooses; without it, it is an error
	// naming the param.
	spec.Inputs["train-workload"] = in("train-workload", "workload", stage.HoldsWorkload)
	if _, err := compareInput(spec); err == nil {
		t.Error("two workloads and no with.workload: no error")
	}
	spec.Params["workload"] = "h1-workload"
	ci, err = compareInput(spec)
	if err != nil || ci.WorkloadDir != "/store/h1-workload" || len(ci.Candidates) != 2 {
		t.Fatalf("chosen workload: %+v, %v", ci, err)
	}
}
