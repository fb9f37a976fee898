package kinds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/experiment"
)

// load writes yaml as exp.yaml in a temp folder and loads it with the
// built-in kinds, as `gsim validate` does.
func load(t *testing.T, yaml string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := experiment.Load(path, experiment.Options{Registry: Registry()})
	return path, err
}

// An experiment written when real Vidur was `uses: sim` with `engine: vidur`
// must fail at validate, at the engine line, saying how to write it now.
func TestOldVidurEngineSaysHowToMigrate(t *testing.T) {
	path, err := load(t, `name: old
stages:
  workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  vidur:
    uses: sim
    needs: [workload]
    with:
      scheduler: vllm
      engine: vidur
`)
	if err == nil {
		t.Fatal("loaded an experiment with uses: sim + engine: vidur")
	}
	want := path + ":11:7: vidur: with.engine: real Vidur is its own kind now: write `uses: vidur` instead of `uses: sim` and drop `engine: vidur`"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
	}
}

// Every built-in kind is registered once under its own name; sim and vidur
// are separate kinds with separate versions, so bumping one never
// invalidates the other's runs.
func TestRegistryHasSimAndVidur(t *testing.T) {
	reg := Registry()
	s, ok1 := reg.Lookup("sim")
	v, ok2 := reg.Lookup("vidur")
	if !ok1 || !ok2 {
		t.Fatalf("kinds: %v", reg.Names())
	}
	if s.Version() == v.Version() {
		t.Errorf("sim and vidur share version %q", s.Version())
	}
}

// twoWorkloads is an experiment with two workload stages (a training one
// and the one measured) and real-bench reading one of them.
const twoWorkloads = `name: two
stages:
  train-workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  h1-workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, seed: 1, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  profile:
    uses: profile
    with: {source: recorded, path: prof, hardware: h100}
  real:
    uses: real-bench
    needs: [train-workload, h1-workload]
    with:
      hardware: h100
`

// Every kind finds its inputs by what its needs hold, and gsim validate
// checks the choice at the YAML line: before, real-bench read only a need
// named "workload" and failed on the GPU machine at run time.
func TestInputsCheckedAtValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // "" for a valid experiment; else "line:col: message"
	}{
		{"real-bench chooses one of two workloads", twoWorkloads + "      workload: h1-workload\n", ""},
		{"real-bench, two workloads, no choice", twoWorkloads,
			"15:5: real: with.workload: several needs hold a workload (h1-workload, train-workload): choose one with workload: <stage>"},
		{"real-bench, the choice is no workload", strings.Replace(twoWorkloads, "needs: [train-workload, h1-workload]", "needs: [train-workload, h1-workload, profile]", 1) + "      workload: profile\n",
			`17:7: real: with.workload: "profile" does not hold a workload (a profile stage, which holds a profile); name one of h1-workload, train-workload`},
		{"real-bench, the choice is a typo", twoWorkloads + "      workload: h2-workload\n",
			`17:7: real: with.workload: "h2-workload" is not among the stage's needs (h1-workload, train-workload); add it to needs: or name one of h1-workload, train-workload`},
		{"replay without a workload", `name: r
stages:
  profile:
    uses: profile
    with: {source: recorded, path: prof, hardware: h100}
  real:
    uses: replay
    needs: [profile]
    with: {path: run}
`, "8:13: real: needs workload: add a workload stage under needs: (needs now: profile)"},
		{"sim with a workload under another name", `name: s
stages:
  h1-workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  prof:
    uses: profile
    with: {source: recorded, path: prof, hardware: h100}
  sim:
    uses: sim
    needs: [h1-workload, prof]
    with: {scheduler: vllm, predictor: vidur-profile}
`, ""},
		{"sim, vidur-profile without a profile", `name: s
stages:
  workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  sim:
    uses: sim
    needs: [workload]
    with: {scheduler: vllm, predictor: vidur-profile}
`, "8:13: sim: needs profile: add a profile stage (or set with.profile to a profile folder) under needs: (needs now: workload)"},
		{"sim, vidur-table without a vidur stage", `name: s
stages:
  workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  sim:
    uses: sim
    needs: [workload]
    with: {scheduler: vllm, interpolation: vidur-table}
`, "8:13: sim: needs vidur output: add a vidur stage, whose raw/predictions hold Vidur's tables (or set with.vidur_tables) under needs: (needs now: workload)"},
		{"vidur without a profile", `name: v
stages:
  workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  vidur:
    uses: vidur
    needs: [workload]
`, "8:13: vidur: needs profile: add a profile stage (or set with.profile to a profile folder, e.g. testdata/profile/h100) under needs: (needs now: workload)"},
		{"compare's reference is no run", `name: c
stages:
  workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: 1}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  real:
    uses: replay
    needs: [workload]
    with: {path: run}
  compare:
    uses: compare
    needs: [workload, real]
    with: {reference: workload}
`, `13:12: compare: with.reference: "workload" does not hold a run (a workload stage, which holds a workload); name one of real`},
		{"fit needs runs", `name: f
matrix: {rate: [1, 2]}
stages:
  workload:
    uses: workload
    with: {model: Qwen/Qwen3-0.6B, num_requests: 4, arrival: {process: poisson, rate: "${{ matrix.rate }}"}, prefill: {dist: fixed, value: 8}, decode: {dist: fixed, value: 8}}
  fit:
    uses: fit
    needs: [{stage: workload, all: true}]
`, "9:21: fit: needs run: add a fan-in over real runs ({stage: real, all: true}) under needs: (needs now: workload)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, err := load(t, tc.yaml)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), path+":"+tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s:%s", err, path, tc.want)
			}
		})
	}
}
