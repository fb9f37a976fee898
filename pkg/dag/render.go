package dag

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/gsim-dev/gsim/pkg/plan"
)

// Formats lists what Render can write.
var Formats = []string{"text", "dot", "mermaid"}

// Render writes the plan's graph as "text" (for terminals), "dot" (Graphviz)
// or "mermaid" (Markdown-embeddable). Output is deterministic: plan order.
func Render(p *plan.Plan, format string, w io.Writer) error {
	if _, err := Build(p); err != nil {
		return fmt.Errorf("render %s: %w", p.Name, err)
	}
	bw := bufio.NewWriter(w)
	switch format {
	case "text":
		renderText(p, bw)
	case "dot":
		renderDot(p, bw)
	case "mermaid":
		renderMermaid(p, bw)
	default:
		return fmt.Errorf("unknown graph format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	return bw.Flush()
}

// group is one stage and its instances, in plan order.
type group struct {
	stage, kind string
	instances   []*plan.Instance
}

func groups(p *plan.Plan) []*group {
	var out []*group
	by := map[string]*group{}
	for _, in := range p.Instances {
		g := by[in.Stage]
		if g == nil {
			g = &group{stage: in.Stage, kind: in.Kind}
			by[in.Stage] = g
			out = append(out, g)
		}
		g.instances = append(g.instances, in)
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func renderText(p *plan.Plan, w *bufio.Writer) {
	gs := groups(p)
	fmt.Fprintf(w, "experiment %s: %s, %s", p.Name, plural(len(gs), "stage"), plural(len(p.Instances), "instance"))
	if len(p.MatrixOrder) > 0 {
		fmt.Fprintf(w, "; matrix: %s", strings.Join(p.MatrixOrder, ", "))
	}
	fmt.Fprintln(w)
	for _, g := range gs {
		fmt.Fprintf(w, "%s (uses %s, %s)\n", g.stage, g.kind, plural(len(g.instances), "instance"))
		for _, in := range g.instances {
			var deps []string
			for _, d := range in.Needs {
				if d.FanIn {
					deps = append(deps, fmt.Sprintf("all %d of %s", len(d.Instances), d.Stage))
				} else {
					deps = append(deps, d.Instances...)
				}
			}
			if len(deps) == 0 {
				fmt.Fprintf(w, "  %s\n", in.ID)
			} else {
				fmt.Fprintf(w, "  %s <- %s\n", in.ID, strings.Join(deps, ", "))
			}
		}
	}
}

// sharedLabel names a stage with one shared instance, and its kind when that
// differs from the stage name.
func sharedLabel(g *group) string {
	if g.kind == g.stage {
		return g.stage
	}
	return g.stage + "\n(" + g.kind + ")"
}

// cellLabel is the part of an id after the stage name, or the stage name for
// a shared instance.
func cellLabel(in *plan.Instance) string {
	if rest, ok := strings.CutPrefix(in.ID, in.Stage+"["); ok {
		return strings.TrimSuffix(rest, "]")
	}
	return in.ID
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

func renderDot(p *plan.Plan, w *bufio.Writer) {
	fmt.Fprintf(w, "digraph %s {\n", dotQuote(p.Name))
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [shape=box, fontname="Helvetica"];`)
	for _, g := range groups(p) {
		if len(g.instances) == 1 && cellLabel(g.instances[0]) == g.stage {
			fmt.Fprintf(w, "  %s [label=%s];\n", dotQuote(g.instances[0].ID), dotQuote(sharedLabel(g)))
			continue
		}
		fmt.Fprintf(w, "  subgraph %s {\n", dotQuote("cluster_"+g.stage))
		fmt.Fprintf(w, "    label=%s;\n", dotQuote(g.stage+" ("+g.kind+")"))
		for _, in := range g.instances {
			fmt.Fprintf(w, "    %s [label=%s];\n", dotQuote(in.ID), dotQuote(cellLabel(in)))
		}
		fmt.Fprintln(w, "  }")
	}
	for _, in := range p.Instances {
		for _, d := range in.Needs {
			for _, up := range d.Instances {
				attr := ""
				if d.FanIn {
					attr = " [style=bold]"
				}
				fmt.Fprintf(w, "  %s -> %s%s;\n", dotQuote(up), dotQuote(in.ID), attr)
			}
		}
	}
	fmt.Fprintln(w, "}")
}

// mermaidText escapes a label for a quoted Mermaid node text.
func mermaidText(s string) string {
	return `"` + strings.NewReplacer(`"`, "#quot;", "\n", "<br>").Replace(s) + `"`
}

func renderMermaid(p *plan.Plan, w *bufio.Writer) {
	// Mermaid ids must be plain words, so nodes are numbered in plan order
	// and labelled with their real ids.
	node := map[string]string{}
	for i, in := range p.Instances {
		node[in.ID] = fmt.Sprintf("n%d", i)
	}
	fmt.Fprintln(w, "flowchart LR")
	for i, g := range groups(p) {
		if len(g.instances) == 1 && cellLabel(g.instances[0]) == g.stage {
			fmt.Fprintf(w, "  %s[%s]\n", node[g.instances[0].ID], mermaidText(sharedLabel(g)))
			continue
		}
		fmt.Fprintf(w, "  subgraph s%d[%s]\n", i, mermaidText(g.stage+" ("+g.kind+")"))
		for _, in := range g.instances {
			fmt.Fprintf(w, "    %s[%s]\n", node[in.ID], mermaidText(cellLabel(in)))
		}
		fmt.Fprintln(w, "  end")
	}
	for _, in := range p.Instances {
		for _, d := range in.Needs {
			arrow := "-->"
			if d.FanIn {
				arrow = "==>"
			}
			for _, up := range d.Instances {
				fmt.Fprintf(w, "  %s %s %s\n", node[up], arrow, node[in.ID])
			}
		}
	}
}
