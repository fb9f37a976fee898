// Package predict holds the simulator's iteration-time predictors: given the
// batch the scheduler formed, how long does the iteration take on the GPU
// host, and how long until the next one starts. Two are built in:
// vidur-profile (Vidur's per-operation decomposition over a profiled grid)
// and step-model (a linear model fitted to a real engine's step_metrics.csv).
package predict

import (
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// Predictor times iterations.
type Predictor interface {
	Name() string
	// StepNs is the wall time of the iteration b (b's entries still carry
	// their state from before it ran).
	StepNs(b *sched.Batch) int64
	// GapNs is the idle time between one iteration's end and the next one's
	// start while work is pending (the engine's per-loop CPU cost that falls
	// outside a step's timestamps).
	GapNs() int64
	// Describe is what run_meta.json records about the predictor.
	Describe() map[string]any
}
