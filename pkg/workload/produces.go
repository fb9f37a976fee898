package workload

import "github.com/gsim-dev/gsim/pkg/stage"

// Produces implements stage.Producer: other kinds find a workload input as
// the need whose output holds a workload, whatever the stage is called.
func (Kind) Produces() string { return stage.HoldsWorkload }
