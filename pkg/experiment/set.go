package experiment

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// applySet applies one "--set path=value" override to the parsed YAML tree,
// before decoding, so that overridden values are checked exactly like
// written ones. Errors are positioned at the deepest part of the path that
// exists.
// setMark starts the line comment of a value that --set put in the tree.
const setMark = "gsim --set "

func applySet(p *problems, root *yaml.Node, set string) {
	path, raw, ok := strings.Cut(set, "=")
	if !ok || path == "" {
		p.add(Pos{}, "--set %q: expected PATH=VALUE, e.g. stages.bench.with.rate=4 or matrix.rate=[1,2]", set)
		return
	}
	var val yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &val); err != nil {
		p.add(Pos{}, "--set %s: the value %q is not valid YAML: %v", path, raw, strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	var v *yaml.Node
	if val.Kind == 0 || len(val.Content) == 0 {
		v = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	} else {
		v = val.Content[0]
	}
	// The value takes the position of what it replaces; the mark lets a
	// later complaint about it say that it came from the command line.
	v.LineComment = setMark + set
	parts := strings.Split(path, ".")
	bad := func(at *yaml.Node, format string, args ...any) {
		p.add(posOf(at), "--set %s: %s", path, fmt.Sprintf(format, args...))
	}
	switch parts[0] {
	case "name", "description":
		if len(parts) != 1 {
			bad(root, "%s has no parts; use --set %s=VALUE", parts[0], parts[0])
			return
		}
		setKey(root, root, parts[0], v)
	case "matrix":
		if len(parts) != 2 {
			bad(root, "expected matrix.NAME=[v1,v2,...]")
			return
		}
		m := lookupKey(root, "matrix")
		if m == nil || isNull(m) {
			m = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: root.Line, Column: root.Column}
			setKey(root, root, "matrix", m)
		}
		if m.Kind != yaml.MappingNode {
			bad(m, "matrix is %s, not a mapping", describe(m))
			return
		}
		// A single value is a one-cell sweep: --set matrix.rate=4.
		if v.Kind == yaml.ScalarNode {
			v = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{v}}
		}
		setKey(root, m, parts[1], v)
	case "stages":
		setStage(p, root, path, parts, v)
	case "executor":
		setExecutor(p, root, path, parts, v)
	default:
		bad(root, "%q does not exist; a --set path starts with name, description, matrix.NAME, stages.STAGE.with, stages.STAGE.resources or executor.slurm", parts[0])
	}
}

func setStage(p *problems, root *yaml.Node, path string, parts []string, v *yaml.Node) {
	bad := func(at *yaml.Node, format string, args ...any) {
		p.add(posOf(at), "--set %s: %s", path, fmt.Sprintf(format, args...))
	}
	stagesKey, stages := lookupEntry(root, "stages")
	if stages == nil || stages.Kind != yaml.MappingNode {
		bad(root, "the experiment has no stages mapping")
		return
	}
	if len(parts) < 3 || parts[2] != "with" && parts[2] != "resources" {
		bad(stagesKey, "expected stages.STAGE.with[.PARAM...]=VALUE or stages.STAGE.resources.KEY=VALUE; only params and resources can be overridden")
		return
	}
	field := parts[2]
	name := parts[1]
	stKey, st := lookupEntry(stages, name)
	if st == nil {
		names := mappingKeys(stages)
		bad(stagesKey, "stage %q does not exist (stages: %s)%s", name, quoteList(names), didYouMean(name, names))
		return
	}
	if st.Kind != yaml.MappingNode {
		bad(st, "stage %q is %s, not a mapping", name, describe(st))
		return
	}
	withKey, with := lookupEntry(st, field)
	if len(parts) == 3 {
		if v.Kind != yaml.MappingNode {
			bad(stKey, "stages.%s.%s must be a mapping, got %s", name, field, describe(v))
			return
		}
		setKey(stKey, st, field, v)
		return
	}
	if with == nil || isNull(with) {
		with = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: stKey.Line, Column: stKey.Column}
		setKey(stKey, st, field, with)
		withKey = stKey
	}
	cur, curKey := with, withKey
	soFar := strings.Join(parts[:3], ".")
	rest := parts[3:]
	for i, part := range rest {
		last := i == len(rest)-1
		cur = deref(cur)
		switch cur.Kind {
		case yaml.MappingNode:
			k, next := lookupEntry(cur, part)
			if last {
				setKey(curKey, cur, part, v)
				return
			}
			if next == nil {
				keys := mappingKeys(cur)
				bad(curKey, "%s.%s does not exist (keys of %s: %s)%s", soFar, part, soFar, quoteList(keys), didYouMean(part, keys))
				return
			}
			cur, curKey = next, k
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(part)
			if err != nil || idx < 0 || idx >= len(cur.Content) {
				bad(curKey, "%s.%s does not exist: %s is a list of %d items; use an index from 0 to %d", soFar, part, soFar, len(cur.Content), len(cur.Content)-1)
				return
			}
			if last {
				relocate(v, cur.Content[idx])
				cur.Content[idx] = v
				return
			}
			cur, curKey = cur.Content[idx], cur.Content[idx]
		default:
			bad(curKey, "%s.%s does not exist: %s is %s, not a mapping or list", soFar, part, soFar, describe(cur))
			return
		}
		soFar += "." + part
	}
}

func lookupEntry(m *yaml.Node, key string) (k, v *yaml.Node) {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	// The last duplicate would win in a plain decode; here duplicates are
	// reported later anyway, so the first is as good as any.
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i], deref(m.Content[i+1])
		}
	}
	return nil, nil
}

func lookupKey(m *yaml.Node, key string) *yaml.Node {
	_, v := lookupEntry(m, key)
	return v
}

func mappingKeys(m *yaml.Node) []string {
	var out []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		out = append(out, m.Content[i].Value)
	}
	return out
}

// setKey replaces or adds key in mapping m. Nodes that come from the command
// line get the position of what they replace (or of anchor), so later errors
// about them still point somewhere useful in the file.
func setKey(anchor, m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			relocate(v, m.Content[i+1])
			m.Content[i+1] = v
			return
		}
	}
	relocate(v, anchor)
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: anchor.Line, Column: anchor.Column}
	m.Content = append(m.Content, k, v)
}

func relocate(n, at *yaml.Node) {
	n.Line, n.Column = at.Line, at.Column
	for _, c := range n.Content {
		relocate(c, at)
	}
}
