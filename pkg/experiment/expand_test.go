package experiment_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/plan"
)

func load(t *testing.T, src string, sets ...string) (*plan.Plan, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return experiment.Load(path, experiment.Options{Sets: sets, Registry: testRegistry()})
}

// shape renders instances and their resolved needs, one line each, so
// expectations read like the graph.
func shape(p *plan.Plan) []string {
	var out []string
	for _, in := range p.Instances {
		line := in.ID
		for _, d := range in.Needs {
			mark := ""
			if d.FanIn {
				mark = "*"
			}
			line += " <-" + mark + " " + strings.Join(d.Instances, " ")
		}
		out = append(out, line)
	}
	return out
}

func TestExpand(t *testing.T) {
	cases := []struct {
		name string
		src  string
		sets []string
		want []string
	}{{
		name: "no matrix: one instance per stage",
		src: `
name: demo
stages:
  hello: {uses: shell, with: {command: echo hi}}
  world: {uses: shell, needs: [hello]}
`,
		want: []string{"hello", "world <- hello"},
	}, {
		name: "shared stage stays single",
		src: `
name: demo
matrix: {rate: [1, 2]}
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
  profile: {uses: profile}
  sim: {uses: sim, needs: [workload, profile]}
`,
		want: []string{
			"workload[rate=1]", "workload[rate=2]",
			"profile",
			"sim[rate=1] <- workload[rate=1] <- profile",
			"sim[rate=2] <- workload[rate=2] <- profile",
		},
	}, {
		name: "fan-in collects every cell and drops the dims",
		src: `
name: demo
matrix: {rate: [1, 2, 4]}
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
  compare: {uses: compare, needs: [workload]}
  report: {uses: report, needs: [{stage: compare, all: true}]}
`,
		want: []string{
			"workload[rate=1]", "workload[rate=2]", "workload[rate=4]",
			"compare[rate=1] <- workload[rate=1]",
			"compare[rate=2] <- workload[rate=2]",
			"compare[rate=4] <- workload[rate=4]",
			"report <-* compare[rate=1] compare[rate=2] compare[rate=4]",
		},
	}, {
		name: "two dims; a stage using one dim gets one instance per value of it",
		src: `
name: demo
matrix:
  rate: [1, 2]
  policy: [vllm, sarathi]
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
  sim: {uses: sim, needs: [workload], with: {policy: "${{ matrix.policy }}"}}
`,
		want: []string{
			"workload[rate=1]", "workload[rate=2]",
			"sim[rate=1,policy=vllm] <- workload[rate=1]",
			"sim[rate=1,policy=sarathi] <- workload[rate=1]",
			"sim[rate=2,policy=vllm] <- workload[rate=2]",
			"sim[rate=2,policy=sarathi] <- workload[rate=2]",
		},
	}, {
		name: "stage using only the second dim",
		src: `
name: demo
matrix:
  rate: [1, 2]
  policy: [vllm, sarathi]
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
  profile: {uses: profile, with: {policy: "${{ matrix.policy }}"}}
`,
		want: []string{
			"workload[rate=1]", "workload[rate=2]",
			"profile[policy=vllm]", "profile[policy=sarathi]",
		},
	}, {
		name: "fan-in grouped by a dim the fan-in stage keeps",
		src: `
name: demo
matrix:
  rate: [1, 2]
  policy: [vllm, sarathi]
stages:
  sim: {uses: sim, with: {rate: "${{ matrix.rate }}", policy: "${{ matrix.policy }}"}}
  per_policy: {uses: report, needs: [{stage: sim, all: true}], with: {title: "${{ matrix.policy }}"}}
`,
		want: []string{
			"sim[rate=1,policy=vllm]", "sim[rate=1,policy=sarathi]",
			"sim[rate=2,policy=vllm]", "sim[rate=2,policy=sarathi]",
			"per_policy[policy=vllm] <-* sim[rate=1,policy=vllm] sim[rate=2,policy=vllm]",
			"per_policy[policy=sarathi] <-* sim[rate=1,policy=sarathi] sim[rate=2,policy=sarathi]",
		},
	}, {
		name: "topological order with declaration order as tie-break",
		src: `
name: demo
stages:
  report: {uses: report, needs: [b, a]}
  b: {uses: shell, needs: [a]}
  c: {uses: shell}
  a: {uses: shell}
`,
		want: []string{"c", "a", "b <- a", "report <- b <- a"},
	}, {
		name: "--set replaces a matrix and a param",
		src: `
name: demo
matrix: {rate: [1, 2]}
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
`,
		sets: []string{"matrix.rate=[8, 16]"},
		want: []string{"workload[rate=8]", "workload[rate=16]"},
	}, {
		name: "--set a single value is a one-cell sweep",
		src: `
name: demo
matrix: {rate: [1, 2]}
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
`,
		sets: []string{"matrix.rate=4"},
		want: []string{"workload[rate=4]"},
	}, {
		name: "integral floats are written without .0",
		src: `
name: demo
matrix: {rate: [1.0, 2.5, 1e-7]}
stages:
  w: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
`,
		want: []string{"w[rate=1]", "w[rate=2.5]", "w[rate=1e-07]"},
	}, {
		name: "repeat: every repeat of a cell, dependents get them all and keep their dims",
		src: `
name: demo
matrix: {rate: [1, 2]}
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.rate }}"}}
  real: {uses: shell, needs: [workload], repeat: 2}
  fit: {uses: shell, needs: [{stage: real, all: true}]}
  compare: {uses: compare, needs: [workload, real]}
  report: {uses: report, needs: [{stage: compare, all: true}]}
`,
		want: []string{
			"workload[rate=1]", "workload[rate=2]",
			"real[rate=1,repeat=1] <- workload[rate=1]",
			"real[rate=1,repeat=2] <- workload[rate=1]",
			"real[rate=2,repeat=1] <- workload[rate=2]",
			"real[rate=2,repeat=2] <- workload[rate=2]",
			"fit <-* real[rate=1,repeat=1] real[rate=1,repeat=2] real[rate=2,repeat=1] real[rate=2,repeat=2]",
			"compare[rate=1] <- workload[rate=1] <- real[rate=1,repeat=1] real[rate=1,repeat=2]",
			"compare[rate=2] <- workload[rate=2] <- real[rate=2,repeat=1] real[rate=2,repeat=2]",
			"report <-* compare[rate=1] compare[rate=2]",
		},
	}, {
		name: "repeat labels; a stage repeated with the same ids pairs with its repeat",
		src: `
name: demo
stages:
  real: {uses: shell, repeat: [sweep1, sweep2], with: {command: "cat ${{ repeat.id }}.csv"}}
  post: {uses: shell, needs: [real], repeat: [sweep1, sweep2]}
  other: {uses: shell, needs: [real], repeat: 3}
`,
		want: []string{
			"real[repeat=sweep1]", "real[repeat=sweep2]",
			"post[repeat=sweep1] <- real[repeat=sweep1]",
			"post[repeat=sweep2] <- real[repeat=sweep2]",
			"other[repeat=1] <- real[repeat=sweep1] real[repeat=sweep2]",
			"other[repeat=2] <- real[repeat=sweep1] real[repeat=sweep2]",
			"other[repeat=3] <- real[repeat=sweep1] real[repeat=sweep2]",
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := load(t, tc.src, tc.sets...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := shape(p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("instances:\n got %q\nwant %q", got, tc.want)
			}
			checkInvariants(t, p)
		})
	}
}

// checkInvariants holds for every plan: ids unique, needs point at earlier
// instances of the named stage, ordinary needs resolve to one instance, and
// every instance of an ordinary need agrees with this cell.
func checkInvariants(t *testing.T, p *plan.Plan) {
	t.Helper()
	pos := map[string]int{}
	for i, in := range p.Instances {
		if _, dup := pos[in.ID]; dup {
			t.Errorf("duplicate instance id %s", in.ID)
		}
		pos[in.ID] = i
		if in.Line <= 0 || in.Col <= 0 {
			t.Errorf("%s: no position", in.ID)
		}
		if in.Params == nil {
			t.Errorf("%s: nil params", in.ID)
		}
		for _, d := range in.Needs {
			if !d.FanIn && len(d.Instances) != 1 && !repeatedNeed(p, d) {
				t.Errorf("%s: ordinary need %s has %d instances", in.ID, d.Stage, len(d.Instances))
			}
			for _, id := range d.Instances {
				j, ok := pos[id]
				if !ok || j >= i {
					t.Errorf("%s needs %s, which is not before it", in.ID, id)
					continue
				}
				up := p.Instances[j]
				if up.Stage != d.Stage {
					t.Errorf("%s: need %s resolved to %s", in.ID, d.Stage, id)
				}
				if !d.FanIn {
					for k, v := range up.Cell {
						if _, mine := in.Cell[k]; k == experiment.RepeatVar && (!mine || len(d.Instances) > 1) {
							continue
						}
						if in.Cell[k] != v {
							t.Errorf("%s: upstream %s disagrees on %s", in.ID, id, k)
						}
					}
				}
			}
		}
	}
}

func TestInterpolationKeepsTypes(t *testing.T) {
	p, err := load(t, `
name: typed
matrix:
  rate: [4]
  ratio: [0.5]
  on: [true]
stages:
  w:
    uses: workload
    with:
      rate: "${{ matrix.rate }}"
      ratio: ${{ matrix.ratio }}
      flag: "${{matrix.on}}"
      file: "trace-r${{ matrix.rate }}-x${{ matrix.ratio }}.csv"
      name: "${{ experiment.name }}/out"
      nested: [{r: "${{ matrix.rate }}"}]
      literal: "no expressions"
`)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Instances[0].Params
	want := map[string]any{
		"rate": 4, "ratio": 0.5, "flag": true,
		"file":    "trace-r4-x0.5.csv",
		"name":    "typed/out",
		"nested":  []any{map[string]any{"r": 4}},
		"literal": "no expressions",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("params:\n got %#v\nwant %#v", got, want)
	}
	if id := p.Instances[0].ID; id != "w[rate=4,ratio=0.5,on=true]" {
		t.Errorf("id %s", id)
	}
	if !reflect.DeepEqual(p.MatrixOrder, []string{"rate", "ratio", "on"}) {
		t.Errorf("matrix order %v", p.MatrixOrder)
	}
}

func TestSetParam(t *testing.T) {
	src := `
name: demo
stages:
  bench:
    uses: checked
    with:
      rate: 1
      arrival: {process: poisson}
      models: [{name: a}, {name: b}]
`
	p, err := load(t, src,
		"stages.bench.with.rate=4",
		"stages.bench.with.arrival.process=gamma",
		"stages.bench.with.models.1.name=c",
		"stages.bench.with.arrival.rate=2.5",
		"name=renamed",
		"description=from the command line",
	)
	if err != nil {
		t.Fatal(err)
	}
	in := p.Instances[0]
	want := map[string]any{
		"rate":    4,
		"arrival": map[string]any{"process": "gamma", "rate": 2.5},
		"models":  []any{map[string]any{"name": "a"}, map[string]any{"name": "c"}},
	}
	if !reflect.DeepEqual(in.Params, want) {
		t.Errorf("params %#v", in.Params)
	}
	if p.Name != "renamed" || p.Description != "from the command line" {
		t.Errorf("name %q description %q", p.Name, p.Description)
	}
}

func TestPlanPaths(t *testing.T) {
	p, err := load(t, "name: x\nstages:\n  a: {uses: shell}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(p.File) || filepath.Base(p.File) != "exp.yaml" || p.BaseDir != filepath.Dir(p.File) {
		t.Errorf("File %q BaseDir %q", p.File, p.BaseDir)
	}
	if in := p.Instances[0]; in.Line != 3 || in.Col != 3 {
		t.Errorf("position %d:%d, want 3:3", in.Line, in.Col)
	}
}

func TestParse(t *testing.T) {
	f, err := experiment.Parse("x.yaml", []byte(`
name: x
description: d
matrix: {rate: [1, 2]}
stages:
  a: {uses: shell, with: {r: "${{ matrix.rate }}"}}
  b: {uses: shell, needs: [a, {stage: a, all: true}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "x" || f.Description != "d" || len(f.Matrix) != 1 || len(f.Stages) != 2 {
		t.Fatalf("%+v", f)
	}
	if got := f.Stages[1].Needs; len(got) != 2 || got[0].All || !got[1].All {
		t.Errorf("needs %+v", got)
	}
	if !reflect.DeepEqual(f.Matrix[0].Values, []any{1, 2}) {
		t.Errorf("values %#v", f.Matrix[0].Values)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	p, err := load(t, `
name: anchors
x-sched: &sched
  max_batch_tokens: 2048
  block_size: 16
matrix: {rate: [2]}
stages:
  sim:
    uses: sim
    with:
      <<: *sched
      block_size: 32
      rate: "${{ matrix.rate }}"
  vidur:
    uses: sim
    with: {<<: [*sched, {extra: "r${{ matrix.rate }}"}], engine: vidur}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"sim[rate=2]":   {"max_batch_tokens": 2048, "block_size": 32, "rate": 2},
		"vidur[rate=2]": {"max_batch_tokens": 2048, "block_size": 16, "extra": "r2", "engine": "vidur"},
	}
	for id, w := range want {
		in := p.Lookup(id)
		if in == nil {
			t.Fatalf("no %s in %q", id, shape(p))
		}
		if !reflect.DeepEqual(in.Params, w) {
			t.Errorf("%s params %#v, want %#v", id, in.Params, w)
		}
	}
}

func BenchmarkLoadSweep(b *testing.B) {
	// 3 variables x 10 values: 1,000 cells, ~3,000 instances.
	src := `
name: big
matrix:
  a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  b: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  c: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
stages:
  workload: {uses: workload, with: {rate: "${{ matrix.a }}", seed: "${{ matrix.b }}"}}
  profile: {uses: profile}
  sim: {uses: sim, needs: [workload, profile], with: {policy: "p${{ matrix.c }}"}}
  bench: {uses: real-bench, needs: [workload]}
  compare: {uses: compare, needs: [bench, sim]}
  report: {uses: report, needs: [{stage: compare, all: true}]}
`
	path := filepath.Join(b.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	reg := testRegistry()
	b.ResetTimer()
	for b.Loop() {
		p, err := experiment.Load(path, experiment.Options{Registry: reg})
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Instances) != 100+1+1000+100+1000+1 {
			b.Fatalf("%d instances", len(p.Instances))
		}
	}
}

// repeatedNeed reports whether every instance of an ordinary need is a
// repeat of one stage (such a need resolves to each repeat of the cell).
func repeatedNeed(p *plan.Plan, d plan.Dep) bool {
	for _, id := range d.Instances {
		if in := p.Lookup(id); in == nil || in.Repeat == 0 {
			return false
		}
	}
	return len(d.Instances) > 0
}

func TestRepeatParamsAndIndex(t *testing.T) {
	p, err := load(t, `
name: demo
matrix: {rate: [4]}
stages:
  real:
    uses: shell
    repeat: [h100, h100-sweep2]
    with: {command: "cat ${{ repeat.id }}/rate-${{ matrix.rate }}", n: "${{ repeat.id }}"}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id, cmd string
		idx     int
	}{{"real[rate=4,repeat=h100]", "cat h100/rate-4", 1}, {"real[rate=4,repeat=h100-sweep2]", "cat h100-sweep2/rate-4", 2}}
	for i, w := range want {
		in := p.Instances[i]
		if in.ID != w.id || in.Params["command"] != w.cmd || in.Repeat != w.idx || in.Params["n"] != in.RepeatID || in.Cell["repeat"] != in.RepeatID {
			t.Errorf("instance %d: id %s command %v repeat %d (%s) n %v cell %v; want %s %q %d", i, in.ID, in.Params["command"], in.Repeat, in.RepeatID, in.Params["n"], in.Cell, w.id, w.cmd, w.idx)
		}
	}
	if _, err := load(t, `
name: demo
matrix: {repeat: [1, 2]}
stages:
  real: {uses: shell, repeat: 2, with: {n: "${{ matrix.repeat }}"}}
`); err == nil || !strings.Contains(err.Error(), "rename the matrix variable") {
		t.Errorf("matrix variable named repeat beside repeat: loaded, err %v", err)
	}
}
