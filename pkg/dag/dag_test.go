package dag_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/dag"
	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/plan"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sweep(t *testing.T) *plan.Plan {
	t.Helper()
	p, err := experiment.Load("testdata/sweep.yaml", experiment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRenderGolden(t *testing.T) {
	p := sweep(t)
	for format, ext := range map[string]string{"text": "txt", "dot": "dot", "mermaid": "mmd"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := dag.Render(p, format, &buf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "sweep."+ext)
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if buf.String() != string(want) {
				t.Errorf("%s output differs from %s:\n%s", format, golden, buf.String())
			}
			// Every instance appears in every format, and every edge too.
			for _, in := range p.Instances {
				if format != "mermaid" && !strings.Contains(buf.String(), in.ID) {
					t.Errorf("%s missing from %s output", in.ID, format)
				}
			}
			if format != "text" {
				edges := 0
				for _, in := range p.Instances {
					for _, d := range in.Needs {
						edges += len(d.Instances)
					}
				}
				arrow := map[string]string{"dot": " -> ", "mermaid": "> "}[format]
				if got := strings.Count(buf.String(), arrow); got != edges {
					t.Errorf("%s: %d edges drawn, plan has %d", format, got, edges)
				}
			}
		})
	}
}

func TestRenderUnknownFormat(t *testing.T) {
	err := dag.Render(sweep(t), "svg", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "text, dot, mermaid") {
		t.Errorf("got %v", err)
	}
}

func TestBuild(t *testing.T) {
	p := sweep(t)
	g, err := dag.Build(p)
	if err != nil {
		t.Fatal(err)
	}
	// workload and bench per rate (2+2), profile 1, sim and compare per
	// cell (4+4), report 1.
	if g.Len() != 14 {
		t.Errorf("%d vertices, want 14", g.Len())
	}
	edges := 0
	for _, in := range p.Instances {
		edges += len(g.Needs(in.ID))
	}
	// bench 2 + sim 4*2 + compare 4*2 + report 4.
	if edges != 22 {
		t.Errorf("%d edges, want 22", edges)
	}
	order, err := g.Order()
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range p.Instances {
		if order[i] != in.ID {
			t.Errorf("order[%d] = %s, plan has %s", i, order[i], in.ID)
		}
	}
}

func TestBuildRejectsBadPlans(t *testing.T) {
	a := &plan.Instance{ID: "a", Stage: "a"}
	b := &plan.Instance{ID: "b", Stage: "b", Needs: []plan.Dep{{Stage: "a", Instances: []string{"a"}}}}
	ghost := &plan.Instance{ID: "c", Stage: "c", Needs: []plan.Dep{{Stage: "x", Instances: []string{"x"}}}}
	loopA := &plan.Instance{ID: "a", Stage: "a", Needs: []plan.Dep{{Stage: "b", Instances: []string{"b"}}}}
	cases := map[string]struct {
		p    *plan.Plan
		want string
	}{
		"out of order": {&plan.Plan{Instances: []*plan.Instance{b, a}}, "b needs a, which comes after it"},
		"unknown need": {&plan.Plan{Instances: []*plan.Instance{a, ghost}}, "not in the plan"},
		"duplicate id": {&plan.Plan{Instances: []*plan.Instance{a, a}}, "appears twice"},
		"cycle":        {&plan.Plan{Instances: []*plan.Instance{loopA, b}}, "dependency cycle: a needs b needs a"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := dag.Build(tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func graphOf(edges ...string) *dag.Graph {
	g := dag.New()
	for _, e := range edges {
		name, needs, _ := strings.Cut(e, ":")
		var list []string
		if needs != "" {
			list = strings.Split(needs, ",")
		}
		g.Add(name, list...)
	}
	return g
}

func TestCycles(t *testing.T) {
	cases := []struct {
		name  string
		g     *dag.Graph
		want  []string
		order string
	}{
		{"acyclic, declared out of order", graphOf("c:b", "b:a", "a"), nil, "a b c"},
		{"self", graphOf("a:a"), []string{"a needs a"}, ""},
		{"two, reported from the earliest declared node", graphOf("x", "c:b", "a:c", "b:a"), []string{"c needs b needs a needs c"}, ""},
		{"two separate cycles", graphOf("a:b", "b:a", "c:d", "d:c"), []string{"a needs b needs a", "c needs d needs c"}, ""},
		{"unknown needs are not edges", graphOf("a:zz", "b:a"), nil, "a b"},
		{"declaration order breaks ties", graphOf("w", "p", "s:w,p", "r:s"), nil, "w p s r"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range tc.g.Cycles() {
				got = append(got, dag.Describe(c))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cycles %q, want %q", got, tc.want)
			}
			order, err := tc.g.Order()
			if (err != nil) != (tc.want != nil) || strings.Join(order, " ") != tc.order {
				t.Errorf("order %q %v, want %q", order, err, tc.order)
			}
		})
	}
	if g := graphOf("a:b", "a"); g.Len() != 1 {
		t.Errorf("a second Add of a name was kept")
	}
	if m := graphOf("a:zz").Missing(); !reflect.DeepEqual(m, [][2]string{{"a", "zz"}}) {
		t.Errorf("missing = %v", m)
	}
}
