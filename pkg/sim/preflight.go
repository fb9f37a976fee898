package sim

import (
	"context"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// PreflightKey implements stage.Preflighter: the embedded engine needs
// nothing of the machine; engine: vidur asks the Vidur engine.
func (k *Kind) PreflightKey(params map[string]any, baseDir string) string {
	if pf := k.preflighter(params); pf != nil {
		return pf.PreflightKey(params, baseDir)
	}
	return ""
}

// Preflight implements stage.Preflighter for engine: vidur.
func (k *Kind) Preflight(ctx context.Context, params map[string]any, baseDir string) error {
	if pf := k.preflighter(params); pf != nil {
		return pf.Preflight(ctx, params, baseDir)
	}
	return nil
}

func (k *Kind) preflighter(params map[string]any) stage.Preflighter {
	v, ok, err := k.delegate(params)
	if !ok || err != nil {
		return nil
	}
	pf, _ := v.(stage.Preflighter)
	return pf
}

var _ stage.Preflighter = (*Kind)(nil)
