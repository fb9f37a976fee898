package stage_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/kinds"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// TestKindsDecodeSameEitherWay: every built-in kind answers CheckParams,
// Resources and Fingerprint the same with DecodeParams' direct path as
// through JSON, for the params of the shipped experiments and for random
// mutations of them (wrong types, unknown keys, removed keys).
func TestKindsDecodeSameEitherWay(t *testing.T) {
	reg := kinds.Registry()
	files, _ := filepath.Glob("../../experiments/*.yaml")
	if len(files) == 0 {
		t.Fatal("no experiments found")
	}
	type sample struct {
		kind   stage.Kind
		params map[string]any
		base   string
	}
	var samples []sample
	for _, f := range files {
		p, err := experiment.Load(f, experiment.Options{Registry: reg})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		seen := map[string]bool{}
		for _, in := range p.Instances {
			if seen[in.Stage] {
				continue
			}
			seen[in.Stage] = true
			k, _ := reg.Lookup(in.Kind)
			samples = append(samples, sample{k, in.Params, p.BaseDir})
		}
	}
	answer := func(s sample, params map[string]any) string {
		fp, fpErr := s.kind.Fingerprint(params, s.base)
		return fmt.Sprintf("check: %v\nresources: %v\nfingerprint: %v %v", s.kind.CheckParams(params), s.kind.Resources(params), fp, fpErr)
	}
	r := rand.New(rand.NewPCG(3, 4))
	odd := []any{nil, true, "x", 1, -1, 1.5, 1e21, []any{1, "a"}, map[string]any{"z": 1}, map[string]any{}}
	for _, s := range samples {
		for i := 0; i < 200; i++ {
			params := mutate(r, s.params, odd, i)
			direct := answer(s, params)
			restore := stage.SetDirectDecode(false)
			viaJSON := answer(s, params)
			restore()
			if direct != viaJSON {
				t.Fatalf("%s %#v:\ndirect:\n%s\nJSON:\n%s", s.kind.Name(), params, direct, viaJSON)
			}
		}
	}
}

// mutate copies params, changing a few values at any depth (i == 0: none).
func mutate(r *rand.Rand, params map[string]any, odd []any, i int) map[string]any {
	c := deepCopy(params).(map[string]any)
	for n := i % 4; n > 0; n-- {
		m := c
		for {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			if len(keys) == 0 {
				break
			}
			k := keys[r.IntN(len(keys))]
			if sub, ok := m[k].(map[string]any); ok && r.IntN(2) == 0 {
				m = sub
				continue
			}
			switch r.IntN(4) {
			case 0:
				delete(m, k)
			case 1:
				m[k+"x"] = deepCopy(odd[r.IntN(len(odd))])
			default:
				m[k] = deepCopy(odd[r.IntN(len(odd))])
			}
			break
		}
	}
	return c
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(x))
		for k, e := range x {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = deepCopy(e)
		}
		return c
	}
	return v
}
