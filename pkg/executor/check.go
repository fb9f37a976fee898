package executor

import "github.com/gsim-dev/gsim/pkg/plan"

// Check reports what is wrong with the request itself (unknown stages in
// Only or Force, kinds missing from the registry, resources beyond
// capacity) without touching the store, so a command can refuse a bad
// request before it makes anything on disk.
func Check(p *plan.Plan, opt Options) error {
	_, err := newGraph(p, &opt)
	return err
}
