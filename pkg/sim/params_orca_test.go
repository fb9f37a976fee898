package sim

import (
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// TestOrcaMaxTokensCheckedAtValidate: orca reserves max_tokens/block_size
// blocks for every request, so sched.New refuses max_tokens below one
// block; params that pass CheckParams must also make a scheduler.
func TestOrcaMaxTokensCheckedAtValidate(t *testing.T) {
	k := NewKind()
	for _, c := range []struct {
		params map[string]any
		want   string // "" for valid
	}{
		{map[string]any{"scheduler": "orca", "max_tokens": 1}, "with.max_tokens: 1 is less than block_size 16"},
		{map[string]any{"scheduler": "orca", "max_tokens": 255, "block_size": 256}, "with.max_tokens: 255 is less than block_size 256"},
		{map[string]any{"scheduler": "orca", "max_tokens": 16}, ""},
		{map[string]any{"scheduler": "orca"}, ""},
		{map[string]any{"scheduler": "vllm", "max_tokens": 1}, ""},
	} {
		err := k.CheckParams(c.params)
		if c.want == "" {
			if err != nil {
				t.Errorf("%v: %v", c.params, err)
				continue
			}
			p, _ := decodeParams(c.params)
			if _, err := sched.New(p.Scheduler, p.schedConfig(1024)); err != nil {
				t.Errorf("%v passed CheckParams but the scheduler refuses it: %v", c.params, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.params, err, c.want)
		}
	}
}
