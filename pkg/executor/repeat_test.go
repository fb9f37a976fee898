package executor

import (
	"context"
	"testing"

	"github.com/gsim-dev/gsim/pkg/plan"
)

// Repeats of one instance have the same params and inputs; each must still
// run on its own, and the first must keep the unrepeated stage's key so
// adding repeat: to an experiment reuses what it already ran.
func TestRepeatsRunEachAndFirstKeepsKey(t *testing.T) {
	f, opt := setup(t)
	params := map[string]any{"value": 1}
	single := inst("single", params)
	r1, r2, r3 := inst("real[repeat=1]", params), inst("real[repeat=2]", params), inst("real[repeat=3]", params)
	for i, in := range []*plan.Instance{r1, r2, r3} {
		in.Repeat, in.RepeatID = i+1, []string{"1", "2", "3"}[i]
	}
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{single, r1, r2, r3}}
	sum, err := Run(context.Background(), p, opt)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, e := range sum.Entries {
		keys[e.ID] = e.Key
	}
	if keys["single"] != keys["real[repeat=1]"] {
		t.Errorf("repeat 1 key %s differs from the unrepeated key %s", keys["real[repeat=1]"], keys["single"])
	}
	if keys["real[repeat=2]"] == keys["real[repeat=1]"] || keys["real[repeat=3]"] == keys["real[repeat=2]"] {
		t.Errorf("repeats share keys: %v", keys)
	}
	if n := f.count("real[repeat=2]") + f.count("real[repeat=3]"); n != 2 {
		t.Errorf("repeats 2 and 3 ran %d times together, want 2", n)
	}
}
