// Package dag turns a plan into a graph and answers questions about it:
// which instances lie downstream or upstream of some others (for --force and
// --only), and how to draw it (text, Graphviz dot, Mermaid).
package dag

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/dominikbraun/graph"

	"github.com/gsim-dev/gsim/pkg/plan"
)

// Build returns the plan as a directed acyclic graph keyed by instance id,
// with an edge from each needed instance to the instance that needs it. Fan-in
// edges carry the attribute fanin=true. It checks what the executor relies
// on: ids are unique, every need names an instance of the plan, and the
// instances are listed in a topological order.
func Build(p *plan.Plan) (graph.Graph[string, *plan.Instance], error) {
	g := graph.New(func(in *plan.Instance) string { return in.ID }, graph.Directed(), graph.Acyclic())
	pos := make(map[string]int, len(p.Instances))
	var errs []error
	for i, in := range p.Instances {
		if _, dup := pos[in.ID]; dup {
			errs = append(errs, fmt.Errorf("instance %s appears twice in the plan", in.ID))
			continue
		}
		pos[in.ID] = i
		if err := g.AddVertex(in); err != nil {
			return nil, fmt.Errorf("add %s: %w", in.ID, err)
		}
	}
	for i, in := range p.Instances {
		for _, d := range in.Needs {
			for _, up := range d.Instances {
				j, ok := pos[up]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("%s needs %s, which is not in the plan", in.ID, up))
					continue
				case j >= i:
					errs = append(errs, fmt.Errorf("%s needs %s, which comes after it: the plan is not in dependency order (or has a cycle)", in.ID, up))
					continue
				}
				opts := []func(*graph.EdgeProperties){}
				if d.FanIn {
					opts = append(opts, graph.EdgeAttribute("fanin", "true"))
				}
				if err := g.AddEdge(up, in.ID, opts...); err != nil && !errors.Is(err, graph.ErrEdgeAlreadyExists) {
					errs = append(errs, fmt.Errorf("edge %s -> %s: %w", up, in.ID, err))
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return g, nil
}

// Descendants returns the given instances and every instance that depends on
// them, directly or not, in plan order. An item of ids may also be a stage
// name, meaning all of its instances; unknown items are ignored (check them
// with Resolve first).
func Descendants(p *plan.Plan, ids []string) []string {
	down := map[string][]string{}
	for _, in := range p.Instances {
		for _, d := range in.Needs {
			for _, up := range d.Instances {
				down[up] = append(down[up], in.ID)
			}
		}
	}
	return reach(p, ids, func(id string) []string { return down[id] })
}

// Ancestors returns the given instances and every instance they depend on,
// directly or not, in plan order: what must be complete to run them. Items
// are matched as in Descendants.
func Ancestors(p *plan.Plan, ids []string) []string {
	return reach(p, ids, func(id string) []string {
		in := p.Lookup(id)
		if in == nil {
			return nil
		}
		var out []string
		for _, d := range in.Needs {
			out = append(out, d.Instances...)
		}
		return out
	})
}

func reach(p *plan.Plan, ids []string, next func(string) []string) []string {
	seen := map[string]bool{}
	var stack []string
	for _, id := range expandNames(p, ids) {
		if !seen[id] {
			seen[id] = true
			stack = append(stack, id)
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, n := range next(id) {
			if !seen[n] {
				seen[n] = true
				stack = append(stack, n)
			}
		}
	}
	var out []string
	for _, in := range p.Instances {
		if seen[in.ID] {
			out = append(out, in.ID)
		}
	}
	return out
}

// expandNames maps stage names to their instances and keeps instance ids.
func expandNames(p *plan.Plan, items []string) []string {
	var out []string
	for _, item := range items {
		if p.Lookup(item) != nil {
			out = append(out, item)
			continue
		}
		for _, in := range p.Instances {
			if in.Stage == item {
				out = append(out, in.ID)
			}
		}
	}
	return out
}

// Resolve turns user-given names (instance ids or stage names) into instance
// ids in plan order, or says which names match nothing and what is close.
func Resolve(p *plan.Plan, names []string) ([]string, error) {
	var errs []error
	for _, n := range names {
		if len(expandNames(p, []string{n})) == 0 {
			errs = append(errs, fmt.Errorf("%q is neither a stage nor an instance of experiment %s%s", n, p.Name, suggest(p, n)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	want := map[string]bool{}
	for _, id := range expandNames(p, names) {
		want[id] = true
	}
	var out []string
	for _, in := range p.Instances {
		if want[in.ID] {
			out = append(out, in.ID)
		}
	}
	return out, nil
}

func suggest(p *plan.Plan, name string) string {
	var stages []string
	seen := map[string]bool{}
	for _, in := range p.Instances {
		if !seen[in.Stage] {
			seen[in.Stage] = true
			stages = append(stages, in.Stage)
		}
	}
	sort.Strings(stages)
	base, _, _ := strings.Cut(name, "[")
	if seen[base] {
		var ids []string
		for _, in := range p.Instances {
			if in.Stage == base {
				ids = append(ids, in.ID)
			}
		}
		return fmt.Sprintf("; instances of %s: %s", base, strings.Join(ids, ", "))
	}
	return fmt.Sprintf("; stages: %s", strings.Join(stages, ", "))
}
