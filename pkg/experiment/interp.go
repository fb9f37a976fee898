package experiment

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gsim-dev/gsim/internal/lazyre"
)

// segment is a piece of an interpolated string: literal text, or a reference
// to a matrix variable (or the experiment name).
type segment struct {
	lit    string
	isExpr bool
	// matrixVar is set for ${{ matrix.NAME }}; experimentName for
	// ${{ experiment.name }}.
	matrixVar      string
	experimentName bool
	// repeatID is set for ${{ repeat.id }}: the repeat's id in a stage
	// with repeat:.
	repeatID bool
}

var exprRE = lazyre.New(`^\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_-]*)\s*$`)

// parseTemplate splits s at ${{ ... }} expressions. A string without
// expressions yields one literal segment.
func parseTemplate(s string) ([]segment, error) {
	var out []segment
	rest := s
	for {
		i := strings.Index(rest, "${{")
		if i < 0 {
			if rest != "" || len(out) == 0 {
				out = append(out, segment{lit: rest})
			}
			return out, nil
		}
		if i > 0 {
			out = append(out, segment{lit: rest[:i]})
		}
		j := strings.Index(rest[i+3:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unterminated expression %q: close it with }}", rest[i:])
		}
		body := rest[i+3 : i+3+j]
		m := exprRE.FindStringSubmatch(body)
		switch {
		case m != nil && m[1] == "matrix":
			out = append(out, segment{isExpr: true, matrixVar: m[2]})
		case m != nil && m[1] == "experiment" && m[2] == "name":
			out = append(out, segment{isExpr: true, experimentName: true})
		case m != nil && m[1] == "repeat" && m[2] == "id":
			out = append(out, segment{isExpr: true, repeatID: true})
		default:
			return nil, fmt.Errorf("unknown expression ${{%s}}: only ${{ matrix.NAME }}, ${{ repeat.id }} and ${{ experiment.name }} are supported", body)
		}
		rest = rest[i+3+j+2:]
	}
}

// isTemplate reports whether a scalar is a string that may hold expressions.
func isTemplate(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.Contains(n.Value, "${{")
}

// scanRefs walks a `with:` tree, collects the matrix variables it uses and
// reports malformed or undefined expressions at the string that holds them.
func scanRefs(p *problems, where string, n *yaml.Node, defined map[string]bool, used map[string]bool) {
	n = deref(n)
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			scanRefs(p, where+"."+n.Content[i].Value, n.Content[i+1], defined, used)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			scanRefs(p, fmt.Sprintf("%s.%d", where, i), c, defined, used)
		}
	case yaml.ScalarNode:
		if !isTemplate(n) {
			return
		}
		segs, err := parseTemplate(n.Value)
		if err != nil {
			p.add(posOf(n), "%s: %v", where, err)
			return
		}
		for _, s := range segs {
			if s.matrixVar == "" {
				continue
			}
			if !defined[s.matrixVar] {
				if len(defined) == 0 {
					p.add(posOf(n), "%s: undefined matrix variable %q in ${{ matrix.%s }}: the experiment has no matrix:; add one (e.g. `matrix: {%s: [1, 2]}`)",
						where, s.matrixVar, s.matrixVar, s.matrixVar)
					continue
				}
				p.add(posOf(n), "%s: undefined matrix variable %q in ${{ matrix.%s }}%s; define it under matrix: (defined: %s)",
					where, s.matrixVar, s.matrixVar, didYouMean(s.matrixVar, sortedKeys(defined)), quoteList(sortedKeys(defined)))
				continue
			}
			used[s.matrixVar] = true
		}
	}
}

// resolve builds the Go value of a `with:` tree for one matrix cell. It
// assumes scanRefs found no problems.
func resolve(n *yaml.Node, cell map[string]any, expName string) (any, error) {
	n = deref(n)
	if n == nil {
		return nil, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].ShortTag() == "!!merge" {
				merges = append(merges, n.Content[i+1])
				continue
			}
			v, err := resolve(n.Content[i+1], cell, expName)
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		// YAML merge keys (<<: *anchor, or a list of anchors): explicit keys
		// win, then earlier merged mappings win over later ones.
		for _, mn := range merges {
			mn = deref(mn)
			list := []*yaml.Node{mn}
			if mn.Kind == yaml.SequenceNode {
				list = mn.Content
			}
			for _, src := range list {
				v, err := resolve(src, cell, expName)
				if err != nil {
					return nil, err
				}
				sm, ok := v.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("a merge key (<<) must refer to a mapping or a list of mappings")
				}
				for k, x := range sm {
					if _, set := m[k]; !set {
						m[k] = x
					}
				}
			}
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := resolve(c, cell, expName)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		if !isTemplate(n) {
			return scalarValue(n)
		}
		segs, err := parseTemplate(n.Value)
		if err != nil {
			return nil, err
		}
		return interpolate(segs, cell, expName), nil
	}
	return nil, fmt.Errorf("unsupported YAML node")
}

// interpolate is the value of a parsed template string in a cell.
func interpolate(segs []segment, cell map[string]any, expName string) any {
	value := func(s segment) any {
		if s.experimentName {
			return expName
		}
		if s.repeatID {
			return cell[RepeatVar]
		}
		return cell[s.matrixVar]
	}
	// A string that is exactly one expression keeps the value's type,
	// so `rate: "${{ matrix.rate }}"` is a number.
	if len(segs) == 1 && segs[0].isExpr {
		return value(segs[0])
	}
	var b strings.Builder
	for _, s := range segs {
		if s.isExpr {
			b.WriteString(Format(value(s)))
		} else {
			b.WriteString(s.lit)
		}
	}
	return b.String()
}

// repeatRef returns the first string under n that uses ${{ repeat.id }}, or
// nil.
func repeatRef(n *yaml.Node) *yaml.Node {
	n = deref(n)
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if r := repeatRef(c); r != nil {
				return r
			}
		}
	case yaml.ScalarNode:
		if !isTemplate(n) {
			return nil
		}
		segs, err := parseTemplate(n.Value)
		if err != nil {
			return nil
		}
		for _, s := range segs {
			if s.repeatID {
				return n
			}
		}
	}
	return nil
}
