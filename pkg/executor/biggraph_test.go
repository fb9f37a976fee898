package executor

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/internal/par"
	"github.com/gsim-dev/gsim/pkg/plan"
)

// TestBigGraphReportsEveryProblemInOrder: a plan big enough that params
// are encoded and resources asked on every core still reports each bad
// instance (an unknown kind, more GPUs than there are), in plan order,
// and a good one gets each instance's own resources (run with -race).
func TestBigGraphReportsEveryProblemInOrder(t *testing.T) {
	_, opt := setup(t)
	n := par.MinItems + 44
	var ins []*plan.Instance
	for i := 0; i < n; i++ {
		ins = append(ins, inst(fmt.Sprintf("s[i=%d]", i), map[string]any{"value": i, "gpu": i % 2}))
	}
	good := &plan.Plan{Name: "e", Instances: ins}
	prep, err := Prepare(good, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i, nd := range prep.g.nodes {
		if nd.inst != ins[i] || nd.resources["gpu"] != i%2 || !strings.Contains(string(nd.params), fmt.Sprintf(`"value":%d`, i)) {
			t.Fatalf("node %d: %s, resources %v, params %s", i, nd.inst.ID, nd.resources, nd.params)
		}
	}

	bad := make([]*plan.Instance, n)
	copy(bad, ins)
	bad[7] = inst("s[i=7]", map[string]any{"value": 7, "gpu": 3})
	bad[150] = &plan.Instance{ID: "s[i=150]", Stage: "s", Kind: "nope", Params: map[string]any{}}
	bad[n-2] = inst(fmt.Sprintf("s[i=%d]", n-2), map[string]any{"value": 0, "gpu": 2})
	_, err = Prepare(&plan.Plan{Name: "e", Instances: bad}, opt)
	if err == nil {
		t.Fatal("no error for a plan with three bad instances")
	}
	msg := err.Error()
	at := []int{strings.Index(msg, "s[i=7] needs 3 gpu"), strings.Index(msg, `s[i=150]: unknown kind "nope"`),
		strings.Index(msg, fmt.Sprintf("s[i=%d] needs 2 gpu", n-2))}
	for i, a := range at {
		if a < 0 || i > 0 && a < at[i-1] {
			t.Fatalf("problems missing or out of plan order (%v):\n%s", at, msg)
		}
	}
	if c := strings.Count(msg, "\n") + 1; c != 3 {
		t.Errorf("%d problems reported, want 3:\n%s", c, msg)
	}
}
