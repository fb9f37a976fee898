// Package kinds assembles the built-in stage kinds into one registry. Each
// kind lives in the package of its concern; this list is the only place that
// knows them all.
package kinds

import (
	"github.com/gsim-dev/gsim/pkg/report"
	"github.com/gsim-dev/gsim/pkg/shell"
	"github.com/gsim-dev/gsim/pkg/sim"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/workload"
)

// Registry returns a registry holding every built-in kind.
func Registry() *stage.Registry {
	return stage.NewRegistry(
		shell.Kind{},
		workload.Kind{},
		// nil until pkg/vidur exposes its stage.Kind: engine: vidur then
		// fails with a clear error.
		sim.NewKind(nil),
		sim.NewFitKind(),
		report.CompareKind{},
		report.SweepKind{},
	)
}
