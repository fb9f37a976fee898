package executor

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// countingFake counts how often its kind is asked for resources: the graph
// of a checked request is built once.
type countingFake struct {
	*fake
	asked atomic.Int64
}

func (c *countingFake) Resources(p map[string]any) map[string]int {
	c.asked.Add(1)
	return c.fake.Resources(p)
}

func TestPreparedRunBuildsTheGraphOnce(t *testing.T) {
	f, opt := setup(t)
	c := &countingFake{fake: f}
	opt.Registry = stage.NewRegistry(c)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("a", map[string]any{"value": 1}),
		inst("b", map[string]any{"value": 2}, "a"),
	}}
	prep, err := Prepare(p, opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prep.Run(context.Background(), opt); err != nil {
		t.Fatal(err)
	}
	if n := c.asked.Load(); n != 2 {
		t.Errorf("resources asked %d times for 2 instances, want 2 (one graph)", n)
	}
	if f.count("a") != 1 || f.count("b") != 1 {
		t.Errorf("runs: a %d, b %d", f.count("a"), f.count("b"))
	}
	// A second Run, or options that make another graph, build it anew:
	// a forced rerun must not walk the finished graph.
	opt.Force = []string{"all"}
	sum, err := prep.Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if f.count("a") != 2 || sum.Count(Ran) != 2 {
		t.Errorf("forced rerun on a prepared request: a ran %d times, summary %+v", f.count("a"), sum.Entries)
	}
	// A bad request is refused by Prepare, as by Check.
	opt.Only = []string{"nope"}
	if _, err := Prepare(p, opt); err == nil {
		t.Error("--only of an unknown stage: no error")
	}
}
