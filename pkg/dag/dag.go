// Package dag is gsim's one graph model: named nodes, each with the nodes it
// needs, in declaration order. It finds cycles (the experiment loader's check
// on stages and the plan check on instances are the same code), orders nodes
// for running, and draws a plan (text, Graphviz dot, Mermaid).
package dag

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gsim-dev/gsim/pkg/plan"
)

// Graph is a directed graph of named nodes. Needs may name nodes added later;
// needs that name no node are kept (Missing lists them) but form no edge.
type Graph struct {
	names []string
	index map[string]int
	needs [][]string
}

// New returns an empty graph.
func New() *Graph { return &Graph{index: map[string]int{}} }

// Add declares a node and what it needs; it reports false, changing
// nothing, if the name is already declared.
func (g *Graph) Add(name string, needs ...string) bool {
	if _, dup := g.index[name]; dup {
		return false
	}
	g.index[name] = len(g.names)
	g.names = append(g.names, name)
	g.needs = append(g.needs, needs)
	return true
}

// Len is the number of nodes.
func (g *Graph) Len() int { return len(g.names) }

// Needs lists the nodes that name needs, as declared.
func (g *Graph) Needs(name string) []string {
	if i, ok := g.index[name]; ok {
		return g.needs[i]
	}
	return nil
}

// Missing lists, in declaration order, each need that names no node, as
// (node, need) pairs.
func (g *Graph) Missing() [][2]string {
	var out [][2]string
	for i, name := range g.names {
		for _, n := range g.needs[i] {
			if _, ok := g.index[n]; !ok {
				out = append(out, [2]string{name, n})
			}
		}
	}
	return out
}

// Cycles returns each cycle once, as the path of nodes c[0] needs c[1] …
// needs c[0], starting at the earliest declared node on it, so the text does
// not depend on where the search began. It finds at least one cycle in every
// cyclic graph (every cycle closed by a back edge of a depth-first search in
// declaration order).
func (g *Graph) Cycles() [][]string {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(g.names))
	var stack []int
	var out [][]string
	seen := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for _, n := range g.needs[i] {
			j, ok := g.index[n]
			if !ok {
				continue
			}
			switch color[j] {
			case white:
				visit(j)
			case grey:
				// The cycle is the stack from j to i, closed by i needs j.
				k := len(stack) - 1
				for stack[k] != j {
					k--
				}
				cyc := stack[k:]
				start := 0
				for m, v := range cyc {
					if v < cyc[start] {
						start = m
					}
				}
				path := make([]string, 0, len(cyc))
				for m := range cyc {
					path = append(path, g.names[cyc[(start+m)%len(cyc)]])
				}
				if key := strings.Join(path, "\x00"); !seen[key] {
					seen[key] = true
					out = append(out, path)
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i := range g.names {
		if color[i] == white {
			visit(i)
		}
	}
	return out
}

// CycleError is a graph that cannot be ordered.
type CycleError struct{ Cycles [][]string }

func (e *CycleError) Error() string {
	var parts []string
	for _, c := range e.Cycles {
		parts = append(parts, "dependency cycle: "+Describe(c))
	}
	return strings.Join(parts, "\n")
}

// Describe writes a cycle as "a needs b needs a".
func Describe(cycle []string) string {
	return strings.Join(append(append([]string(nil), cycle...), cycle[0]), " needs ")
}

// Order returns the nodes in a dependency order, declaration order breaking
// ties: repeatedly the earliest declared node whose needs are all placed.
// Needs that name no node are ignored.
func (g *Graph) Order() ([]string, error) {
	if c := g.Cycles(); len(c) > 0 {
		return nil, &CycleError{Cycles: c}
	}
	placed := make([]bool, len(g.names))
	out := make([]string, 0, len(g.names))
	for len(out) < len(g.names) {
		for i := range g.names {
			if placed[i] || !g.ready(i, placed) {
				continue
			}
			placed[i] = true
			out = append(out, g.names[i])
			break
		}
	}
	return out, nil
}

func (g *Graph) ready(i int, placed []bool) bool {
	for _, n := range g.needs[i] {
		if j, ok := g.index[n]; ok && !placed[j] {
			return false
		}
	}
	return true
}

// Build returns a plan's instance graph after checking what the executor
// relies on: ids are unique, every need names an instance of the plan, there
// is no cycle, and the instances are listed in dependency order.
func Build(p *plan.Plan) (*Graph, error) {
	g := New()
	var errs []error
	for _, in := range p.Instances {
		var needs []string
		for _, d := range in.Needs {
			needs = append(needs, d.Instances...)
		}
		if !g.Add(in.ID, needs...) {
			errs = append(errs, fmt.Errorf("instance %s appears twice in the plan", in.ID))
		}
	}
	for _, m := range g.Missing() {
		errs = append(errs, fmt.Errorf("%s needs %s, which is not in the plan", m[0], m[1]))
	}
	if c := g.Cycles(); len(c) > 0 {
		errs = append(errs, &CycleError{Cycles: c})
	} else {
		for i, name := range g.names {
			for _, n := range g.needs[i] {
				if j, ok := g.index[n]; ok && j > i {
					errs = append(errs, fmt.Errorf("%s needs %s, which comes after it: the plan is not in dependency order", name, n))
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return g, nil
}
