package executor

import (
	"testing"

	"github.com/gsim-dev/gsim/pkg/plan"
)

// A mistyped --only or --force names the nearest stage and lists them all.
func TestUnknownStageNameSuggests(t *testing.T) {
	_, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("workload", map[string]any{"value": 1}),
		inst("sim", map[string]any{"value": 2}, "workload"),
	}}
	for _, tc := range []struct {
		only, force []string
		want        string
	}{
		{only: []string{"simm"}, want: `--only simm: no such stage (did you mean "sim"?); stages: sim, workload`},
		{force: []string{"worklod"}, want: `--force worklod: no such stage (did you mean "workload"?); stages: sim, workload`},
		{only: []string{"zzzzzzzz"}, want: `--only zzzzzzzz: no such stage; stages: sim, workload`},
	} {
		o := opt
		o.Only, o.Force = tc.only, tc.force
		_, err := Explain(p, o)
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
		if _, ok := err.(*UsageError); !ok {
			t.Errorf("%v is not a *UsageError (exit code 2)", err)
		}
	}
}
