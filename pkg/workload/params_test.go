package workload

import (
	"errors"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
)

const baseYAML = `
model: Qwen/Qwen3-0.6B
seed: 1
num_requests: 10
arrival: {process: poisson, rate: 4}
prefill: {dist: fixed, value: 8}
decode: {dist: fixed, value: 4}
`

// withEdit returns the base params with one dotted key set (nil deletes).
func withEdit(t *testing.T, edits map[string]any) map[string]any {
	t.Helper()
	m := paramsFromYAML(t, baseYAML)
	for path, v := range edits {
		parts := strings.Split(path, ".")
		cur := m
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		if v == nil {
			delete(cur, parts[len(parts)-1])
		} else {
			cur[parts[len(parts)-1]] = v
		}
	}
	return m
}

func TestCheckParams(t *testing.T) {
	if err := (Kind{}).CheckParams(withEdit(t, nil)); err != nil {
		t.Fatalf("base params: %v", err)
	}
	cases := []struct {
		name  string
		edits map[string]any
		path  string
		msg   string
	}{
		{"no model", map[string]any{"model": nil}, "model", "required"},
		{"no count", map[string]any{"num_requests": nil}, "num_requests", "set num_requests (a count) or duration"},
		{"both count and duration", map[string]any{"duration": "10s"}, "num_requests", "not both"},
		{"bad duration", map[string]any{"num_requests": nil, "duration": "ten"}, "duration", "Go duration"},
		{"negative duration", map[string]any{"num_requests": nil, "duration": "-5s"}, "duration", "> 0"},
		{"negative count", map[string]any{"num_requests": -3}, "num_requests", "> 0"},
		{"huge count", map[string]any{"num_requests": 20_000_000}, "num_requests", "more than"},
		{"huge duration", map[string]any{"num_requests": nil, "duration": "1000000h"}, "duration", "more than"},
		{"no process", map[string]any{"arrival.process": nil}, "arrival.process", "required"},
		{"bad process", map[string]any{"arrival.process": "bursty"}, "arrival.process", `"bursty" is not a process`},
		{"no rate", map[string]any{"arrival.rate": nil}, "arrival.rate", "required for poisson"},
		{"zero rate", map[string]any{"arrival.rate": 0}, "arrival.rate", "must be > 0"},
		{"rate unused", map[string]any{"arrival.process": "all-at-once"}, "arrival.rate", "not used by process all-at-once"},
		{"no burstiness", map[string]any{"arrival.process": "gamma"}, "arrival.burstiness", "required for gamma"},
		{"bad burstiness", map[string]any{"arrival.process": "gamma", "arrival.burstiness": -1}, "arrival.burstiness", "must be > 0"},
		{"burstiness unused", map[string]any{"arrival.burstiness": 0.5}, "arrival.burstiness", "only used by process gamma"},
		{"trace no path", map[string]any{"arrival.process": "trace", "arrival.rate": nil}, "arrival.path", "required for trace"},
		{"path unused", map[string]any{"arrival.path": "x.csv"}, "arrival.path", "only used by process trace"},
		{"all-at-once duration", map[string]any{"arrival.process": "all-at-once", "arrival.rate": nil, "num_requests": nil, "duration": "5s"}, "duration", "set num_requests instead"},
		{"no dist", map[string]any{"prefill.dist": nil}, "prefill.dist", "required"},
		{"bad dist", map[string]any{"decode.dist": "pareto"}, "decode.dist", `"pareto" is not a distribution`},
		{"fixed no value", map[string]any{"prefill.value": nil}, "prefill.value", "required for dist fixed"},
		{"fixed zero", map[string]any{"prefill.value": 0}, "prefill.value", ">= 1"},
		{"uniform no max", map[string]any{"prefill.dist": "uniform", "prefill.value": nil, "prefill.min": 4}, "prefill.max", "required for dist uniform"},
		{"max below min", map[string]any{"prefill.dist": "uniform", "prefill.value": nil, "prefill.min": 40, "prefill.max": 4}, "prefill.max", "below min 40"},
		{"min zero", map[string]any{"prefill.min": 0}, "prefill.min", ">= 1"},
		{"normal no std", map[string]any{"decode.dist": "normal", "decode.value": nil, "decode.mean": 10}, "decode.std", "required for dist normal"},
		{"negative std", map[string]any{"decode.dist": "normal", "decode.value": nil, "decode.mean": 10, "decode.std": -1}, "decode.std", ">= 0"},
		{"lognormal both", map[string]any{"decode.dist": "lognormal", "decode.value": nil, "decode.mean": 10, "decode.std": 1, "decode.mu": 1}, "decode.mu", "not both"},
		{"lognormal no sigma", map[string]any{"decode.dist": "lognormal", "decode.value": nil, "decode.mu": 1}, "decode.sigma", "required for dist lognormal"},
		{"lognormal zero mean", map[string]any{"decode.dist": "lognormal", "decode.value": nil, "decode.mean": 0, "decode.std": 1}, "decode.mean", "> 0"},
		{"zipf no s", map[string]any{"prefill.dist": "zipf", "prefill.value": nil, "prefill.min": 1, "prefill.max": 9}, "prefill.s", "required for dist zipf"},
		{"zipf bad s", map[string]any{"prefill.dist": "zipf", "prefill.value": nil, "prefill.min": 1, "prefill.max": 9, "prefill.s": 0}, "prefill.s", "> 0"},
		{"zipf range", map[string]any{"prefill.dist": "zipf", "prefill.value": nil, "prefill.min": 1, "prefill.max": 1 << 30, "prefill.s": 1}, "prefill.max", "range"},
		{"empirical no path", map[string]any{"prefill.dist": "empirical", "prefill.value": nil}, "prefill.path", "required for dist empirical"},
		{"field unused", map[string]any{"prefill.mean": 3}, "prefill.mean", "not used by dist fixed"},
		{"column unused", map[string]any{"prefill.column": "x"}, "prefill.column", "not used by dist fixed"},
		{"max total", map[string]any{"max_total_tokens": 1}, "max_total_tokens", ">= 2"},
		{"prompts", map[string]any{"prompts": "real"}, "prompts", `"real"`},
		{"wrong type", map[string]any{"prefill.value": "many"}, "prefill.value", "expected an integer, got a string"},
		{"unknown key", map[string]any{"rate": 4}, "rate", "unknown parameter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := (Kind{}).CheckParams(withEdit(t, c.edits))
			if err == nil {
				t.Fatalf("no error, want %s: %s", c.path, c.msg)
			}
			var found []string
			for _, e := range flatten(err) {
				var pe *stage.ParamError
				if !errors.As(e, &pe) {
					t.Fatalf("%v is not a *stage.ParamError", e)
				}
				if pe.Path == c.path && strings.Contains(pe.Msg, c.msg) {
					return
				}
				found = append(found, pe.Error())
			}
			t.Fatalf("want with.%s containing %q, got:\n%s", c.path, c.msg, strings.Join(found, "\n"))
		})
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func TestReportsEveryBadParam(t *testing.T) {
	err := (Kind{}).CheckParams(withEdit(t, map[string]any{"model": nil, "arrival.rate": -1, "decode.value": 0}))
	if n := len(flatten(err)); n != 3 {
		t.Fatalf("got %d errors, want 3: %v", n, err)
	}
}

// A bad value gets one message: a negative count is not also "required".
func TestNegativeCountIsOneMessage(t *testing.T) {
	err := (Kind{}).CheckParams(withEdit(t, map[string]any{"num_requests": -5}))
	errs := flatten(err)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "with.num_requests: must be > 0") {
		t.Fatalf("want exactly the one message `with.num_requests: must be > 0`, got %d: %v", len(errs), err)
	}
}
