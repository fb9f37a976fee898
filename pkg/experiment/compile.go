package experiment

import "go.yaml.in/yaml/v3"

// template is a stage's with: tree prepared once for all its cells:
// resolving it for a cell walks Go values, without resolving YAML tags,
// decoding scalars or parsing expressions again for every instance of a
// big matrix. It yields exactly what resolve yields for the same tree.
type template interface {
	value(cell map[string]any, expName string) any
}

// constant is a scalar without expressions (strings, numbers, booleans,
// nil, timestamps: values no one can change in place).
type constant struct{ v any }

func (c constant) value(map[string]any, string) any { return c.v }

// mapping makes a fresh map per instance.
type mapping struct {
	keys []string
	vals []template
}

func (m *mapping) value(cell map[string]any, expName string) any {
	out := make(map[string]any, len(m.keys))
	for i, k := range m.keys {
		out[k] = m.vals[i].value(cell, expName)
	}
	return out
}

// sequence makes a fresh list per instance.
type sequence []template

func (s sequence) value(cell map[string]any, expName string) any {
	out := make([]any, len(s))
	for i, t := range s {
		out[i] = t.value(cell, expName)
	}
	return out
}

// interpolated is a string with ${{ ... }} expressions.
type interpolated []segment

func (segs interpolated) value(cell map[string]any, expName string) any {
	return interpolate(segs, cell, expName)
}

// merged is a mapping with YAML merge keys (<<), rare enough to resolve as
// written for every cell.
type merged struct{ n *yaml.Node }

func (m merged) value(cell map[string]any, expName string) any {
	v, _ := resolve(m.n, cell, expName) // compile made sure it resolves
	return v
}

// compile prepares n; its error is the one resolve would return for n.
func compile(n *yaml.Node) (template, error) {
	n = deref(n)
	if n == nil {
		return constant{}, nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := &mapping{}
		at := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].ShortTag() == "!!merge" {
				// resolve reports the tree's first problem; a cell
				// without one tells whether there is any.
				if _, err := resolve(n, map[string]any{}, ""); err != nil {
					return nil, err
				}
				return merged{n}, nil
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			t, err := compile(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			k := n.Content[i].Value
			if j, dup := at[k]; dup {
				m.vals[j] = t // the last of duplicate keys wins, as in a map
				continue
			}
			at[k] = len(m.keys)
			m.keys = append(m.keys, k)
			m.vals = append(m.vals, t)
		}
		return m, nil
	case yaml.SequenceNode:
		s := make(sequence, 0, len(n.Content))
		for _, c := range n.Content {
			t, err := compile(c)
			if err != nil {
				return nil, err
			}
			s = append(s, t)
		}
		return s, nil
	case yaml.ScalarNode:
		if !isTemplate(n) {
			v, err := scalarValue(n)
			if err != nil {
				return nil, err
			}
			return constant{v}, nil
		}
		segs, err := parseTemplate(n.Value)
		if err != nil {
			return nil, err
		}
		return interpolated(segs), nil
	}
	_, err := resolve(n, map[string]any{}, "")
	return nil, err
}
