package executor

import (
	"context"
	"maps"
	"slices"

	"github.com/gsim-dev/gsim/pkg/gpus"
	"github.com/gsim-dev/gsim/pkg/plan"
)

// Check reports what is wrong with the request itself (unknown stages in
// Only or Force, kinds missing from the registry, resources beyond
// capacity) without touching the store, so a command can refuse a bad
// request before it makes anything on disk.
func Check(p *plan.Plan, opt Options) error {
	_, err := Prepare(p, opt)
	return err
}

// Prepared is a request Check found good, with the graph Run walks, so
// that a command that checks first does not build it twice (in a big
// sweep, every instance's params are encoded and asked for resources).
type Prepared struct {
	p    *plan.Plan
	g    *graph
	opt  Options // what the graph was built from
	used bool
}

// Prepare is Check that keeps what it built for Run.
func Prepare(p *plan.Plan, opt Options) (*Prepared, error) {
	g, err := newGraph(p, &opt)
	if err != nil {
		return nil, err
	}
	return &Prepared{p: p, g: g, opt: opt}, nil
}

// Run runs the prepared request with opt, which adds to the options
// Prepare had (the store, a display, a launcher). A graph is walked once:
// a second Run, or options that would build another graph, build it anew.
func (x *Prepared) Run(ctx context.Context, opt Options) (*Summary, error) {
	if x.used || !sameGraph(x.opt, opt) {
		return Run(ctx, x.p, opt)
	}
	x.used = true
	return run(ctx, x.p, x.g, opt)
}

// sameGraph tells whether newGraph would build the same graph from a and b.
func sameGraph(a, b Options) bool {
	return a.Registry == b.Registry && slices.Equal(a.Only, b.Only) && slices.Equal(a.Force, b.Force) &&
		maps.Equal(a.Slots, b.Slots) && maps.EqualFunc(a.Devices, b.Devices, func(x, y []gpus.Device) bool { return slices.Equal(x, y) })
}
