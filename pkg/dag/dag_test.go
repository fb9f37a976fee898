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
	n, _ := g.Order()
	m, _ := g.Size()
	// workload and bench per rate (2+2), profile 1, sim and compare per
	// cell (4+4), report 1.
	if n != 14 {
		t.Errorf("%d vertices, want 14", n)
	}
	// bench 2 + sim 4*2 + compare 4*2 + report 4.
	if m != 22 {
		t.Errorf("%d edges, want 22", m)
	}
	e, err := g.Edge("compare[rate=4,policy=sarathi]", "report")
	if err != nil || e.Properties.Attributes["fanin"] != "true" {
		t.Errorf("fan-in edge: %v %v", e.Properties.Attributes, err)
	}
}

func TestBuildRejectsBadPlans(t *testing.T) {
	a := &plan.Instance{ID: "a", Stage: "a"}
	b := &plan.Instance{ID: "b", Stage: "b", Needs: []plan.Dep{{Stage: "a", Instances: []string{"a"}}}}
	ghost := &plan.Instance{ID: "c", Stage: "c", Needs: []plan.Dep{{Stage: "x", Instances: []string{"x"}}}}
	cases := map[string]struct {
		p    *plan.Plan
		want string
	}{
		"out of order": {&plan.Plan{Instances: []*plan.Instance{b, a}}, "comes after it"},
		"unknown need": {&plan.Plan{Instances: []*plan.Instance{a, ghost}}, "not in the plan"},
		"duplicate id": {&plan.Plan{Instances: []*plan.Instance{a, a}}, "appears twice"},
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

func TestReach(t *testing.T) {
	p := sweep(t)
	cases := []struct {
		name string
		fn   func(*plan.Plan, []string) []string
		ids  []string
		want []string
	}{{
		name: "descendants of a shared instance reach every cell",
		fn:   dag.Descendants, ids: []string{"profile"},
		want: []string{
			"profile",
			"sim[rate=1,policy=vllm]", "sim[rate=1,policy=sarathi]", "sim[rate=4,policy=vllm]", "sim[rate=4,policy=sarathi]",
			"compare[rate=1,policy=vllm]", "compare[rate=1,policy=sarathi]", "compare[rate=4,policy=vllm]", "compare[rate=4,policy=sarathi]",
			"report",
		},
	}, {
		name: "descendants of one cell stay in that cell",
		fn:   dag.Descendants, ids: []string{"bench[rate=4]"},
		want: []string{"bench[rate=4]", "compare[rate=4,policy=vllm]", "compare[rate=4,policy=sarathi]", "report"},
	}, {
		name: "ancestors of one cell",
		fn:   dag.Ancestors, ids: []string{"compare[rate=1,policy=sarathi]"},
		want: []string{"workload[rate=1]", "bench[rate=1]", "profile", "sim[rate=1,policy=sarathi]", "compare[rate=1,policy=sarathi]"},
	}, {
		name: "a stage name means all its instances",
		fn:   dag.Ancestors, ids: []string{"bench"},
		want: []string{"workload[rate=1]", "workload[rate=4]", "bench[rate=1]", "bench[rate=4]"},
	}, {
		name: "unknown names are ignored",
		fn:   dag.Descendants, ids: []string{"nope"},
		want: nil,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.fn(p, tc.ids); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	// Everything is an ancestor of the report and a descendant of the roots.
	if got := dag.Ancestors(p, []string{"report"}); len(got) != len(p.Instances) {
		t.Errorf("report has %d ancestors (with itself), want %d", len(got), len(p.Instances))
	}
}

func TestResolve(t *testing.T) {
	p := sweep(t)
	got, err := dag.Resolve(p, []string{"report", "workload"})
	if err != nil || !reflect.DeepEqual(got, []string{"workload[rate=1]", "workload[rate=4]", "report"}) {
		t.Errorf("got %q %v", got, err)
	}
	_, err = dag.Resolve(p, []string{"bench[rate=2]"})
	if err == nil || !strings.Contains(err.Error(), "instances of bench: bench[rate=1], bench[rate=4]") {
		t.Errorf("got %v", err)
	}
}
