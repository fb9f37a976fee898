package executor

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/progress"
)

// recorder is a Display that keeps every event with the counts it saw.
type recorder struct {
	mu     sync.Mutex
	counts progress.Counts
	events []string
}

func (r *recorder) Started(id string)                         {}
func (r *recorder) Progress(string, float64, float64, string) {}
func (r *recorder) Finished(id string, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s %v %d/%d", id, err == nil, r.counts.Done, r.counts.Total))
}
func (r *recorder) Printf(string, ...any) {}
func (r *recorder) Close()                {}
func (r *recorder) SetCounts(c progress.Counts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Done < r.counts.Done || c.Total != r.counts.Total && r.counts.Total != 0 {
		r.events = append(r.events, fmt.Sprintf("counts went from %+v to %+v", r.counts, c))
	}
	r.counts = c
}

// The overall counter covers the selected instances, counts up-to-date ones
// as done, and is current when each Finished event arrives.
func TestCountsReachDisplayBeforeFinished(t *testing.T) {
	_, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("a", map[string]any{"value": 1}),
		inst("b", map[string]any{"value": 2}, "a"),
		inst("c", map[string]any{"value": 3}, "b"),
	}}
	opt.Jobs = 1
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatal(err)
	}
	p.Instances[2].Params["value"] = 4 // only c reruns
	rec := &recorder{}
	opt.Display = rec
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatal(err)
	}
	want := []string{"c true 3/3"}
	if fmt.Sprint(rec.events) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", rec.events, want)
	}
	if rec.counts != (progress.Counts{Total: 3, Done: 3}) {
		t.Errorf("final counts %+v", rec.counts)
	}
}
