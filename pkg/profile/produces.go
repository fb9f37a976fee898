package profile

import "github.com/gsim-dev/gsim/pkg/stage"

// Produces implements stage.Producer: a profile in Vidur's layout.
func (Kind) Produces() string { return stage.HoldsProfile }
