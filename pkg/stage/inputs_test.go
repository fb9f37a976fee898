package stage

import (
	"errors"
	"strings"
	"testing"
)

var testWorkload = Role{Name: "workload", Param: "workload", Holds: HoldsWorkload, Hint: "a workload stage"}

// The one rule, at load time: a role is filled by the needs that hold what
// it reads, a param chooses among several, and every failure says what to
// fix (a *ParamError at the param, else a *NeedsError).
func TestCheckInputs(t *testing.T) {
	w := func(name string) Need { return Need{Stage: name, Kind: "workload", Holds: HoldsWorkload} }
	run := func(name, kind string) Need { return Need{Stage: name, Kind: kind, Holds: HoldsRun} }
	prof := Need{Stage: "profile", Kind: "profile", Holds: HoldsProfile}
	tests := []struct {
		name   string
		params map[string]any
		needs  []Need
		roles  []Role
		param  string // the ParamError's path; "" for a NeedsError
		want   string // "" for no error
	}{
		{"named workload", nil, []Need{w("workload")}, []Role{testWorkload}, "", ""},
		{"any name", nil, []Need{w("h1-workload"), prof}, []Role{testWorkload}, "", ""},
		{"two, chosen", map[string]any{"workload": "h1-workload"}, []Need{w("train-workload"), w("h1-workload")}, []Role{testWorkload}, "", ""},
		{"two, unchosen", nil, []Need{w("train-workload"), w("h1-workload")}, []Role{testWorkload}, "workload",
			"several needs hold a workload (h1-workload, train-workload): choose one with workload: <stage>"},
		{"none", nil, []Need{prof}, []Role{testWorkload}, "",
			"needs workload: add a workload stage under needs: (needs now: profile)"},
		{"chosen is not a need", map[string]any{"workload": "h2-workload"}, []Need{w("h1-workload")}, []Role{testWorkload}, "workload",
			`"h2-workload" is not among the stage's needs (h1-workload); add it to needs: or name one of h1-workload`},
		{"chosen holds something else", map[string]any{"workload": "profile"}, []Need{w("h1-workload"), prof}, []Role{testWorkload}, "workload",
			`"profile" does not hold a workload (a profile stage, which holds a profile); name one of h1-workload`},
		{"fan-in where one is read", nil, []Need{{Stage: "workload", Kind: "workload", Holds: HoldsWorkload, All: true}}, []Role{testWorkload}, "",
			"need workload is a fan-in (all: true) but workload takes one workload per instance"},
		{"optional, empty", nil, []Need{w("w")}, []Role{{Name: "fit", Holds: HoldsFit, Optional: true}}, "", ""},
		{"several, no param", nil, []Need{prof, {Stage: "p2", Kind: "profile", Holds: HoldsProfile}},
			[]Role{{Name: "profile", Holds: HoldsProfile}}, "",
			"several needs hold a profile (p2, profile) and the stage reads one: keep one of them under needs:"},
		{"many", nil, []Need{run("real", "replay"), run("real-repeat", "real-bench")}, []Role{{Name: "runs", Holds: HoldsRun, Many: true}}, "", ""},
		{"by kind", nil, []Need{run("vidur", "vidur")}, []Role{{Name: "tables", Kinds: []string{"vidur"}}}, "", ""},
		{"by kind, missing", nil, []Need{run("sim", "sim")}, []Role{{Name: "tables", Kinds: []string{"vidur"}, Hint: "a vidur stage"}}, "",
			"needs vidur output: add a vidur stage under needs: (needs now: sim)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckInputs(tc.params, tc.needs, tc.roles)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			var pe *ParamError
			var ne *NeedsError
			switch {
			case tc.param != "" && (!errors.As(err, &pe) || pe.Path != tc.param):
				t.Errorf("want a ParamError at %q, got %T", tc.param, err)
			case tc.param == "" && !errors.As(err, &ne):
				t.Errorf("want a NeedsError, got %T", err)
			}
		})
	}
}

// The same rule at run time, on the spec's inputs.
func TestFindInputs(t *testing.T) {
	spec := &Spec{Kind: "real-bench", Instance: "bench", Params: map[string]any{"workload": "h1-workload"}, Inputs: map[string][]Input{
		"train-workload": {{Instance: "train-workload", Kind: "workload", Holds: HoldsWorkload, Dir: "/t"}},
		"h1-workload":    {{Instance: "h1-workload", Kind: "workload", Holds: HoldsWorkload, Dir: "/h"}},
		"real":           {{Instance: "real[rate=1]", Kind: "replay", Holds: HoldsRun, Dir: "/r1"}, {Instance: "real[rate=2]", Kind: "replay", Holds: HoldsRun, Dir: "/r2"}},
		"sim":            {{Instance: "sim", Kind: "sim", Holds: HoldsRun, Dir: "/s"}},
	}}
	in, ok, err := FindInput(spec, testWorkload)
	if err != nil || !ok || in.Dir != "/h" {
		t.Fatalf("workload: %v %v %v", in, ok, err)
	}
	runs, err := FindInputs(spec, Role{Name: "runs", Holds: HoldsRun, Many: true})
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, r := range runs {
		dirs = append(dirs, r.Dir)
	}
	if strings.Join(dirs, " ") != "/r1 /r2 /s" {
		t.Errorf("runs in need-name and cell order: %v", dirs)
	}
	if _, ok, err := FindInput(spec, Role{Name: "fit", Holds: HoldsFit, Optional: true}); ok || err != nil {
		t.Errorf("empty optional role: %v %v", ok, err)
	}
	// An input written without Holds is known by its kind's name.
	old := &Spec{Inputs: map[string][]Input{"w": {{Kind: "workload", Dir: "/w"}}}}
	if in, ok, err := FindInput(old, testWorkload); err != nil || !ok || in.Dir != "/w" {
		t.Errorf("input without holds: %v %v %v", in, ok, err)
	}
	delete(spec.Params, "workload")
	if _, _, err := FindInput(spec, testWorkload); err == nil || !strings.Contains(err.Error(), "choose one with workload: <stage>") {
		t.Errorf("ambiguous workload: %v", err)
	}
}
