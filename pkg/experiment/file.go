// Package experiment reads an experiment YAML into a plan: it decodes the file
// strictly (every error positioned), applies --set overrides, interpolates
// matrix values into stage params, expands the matrix into stage instances and
// lets each stage kind check its params.
package experiment

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/gsim-dev/gsim/pkg/plan"
)

// File is an experiment as written, before expansion.
type File struct {
	Path        string
	Name        string
	NamePos     Pos
	Description string
	// Matrix holds the variables in declaration order.
	Matrix    []*MatrixVar
	MatrixPos Pos
	// Stages are in declaration order.
	Stages    []*Stage
	StagesPos Pos
	// Slurm is the executor.slurm block.
	Slurm plan.Slurm
}

// MatrixVar is one matrix variable and its values, in declaration order.
type MatrixVar struct {
	Name   string
	Pos    Pos // the key
	Values []any
	// ValuePos[i] is where Values[i] is written.
	ValuePos []Pos
}

// Stage is one entry of `stages:`.
type Stage struct {
	Name    string
	Pos     Pos // the key
	Uses    string
	UsesPos Pos
	Needs   []Need
	// With is the raw `with:` value (nil when absent); it is kept as a node
	// so interpolation and kind errors can point into it.
	With    *yaml.Node
	WithPos Pos // the `with` key, or the stage key when absent
	// Resources is what the stage asks a batch system for.
	Resources plan.Resources
	// Repeats are the ids of `repeat:` (1..N for a count, or the labels of
	// a list); nil when the stage is not repeated.
	Repeats   []any
	RepeatPos Pos
}

// Need is one item of `needs:`.
type Need struct {
	Stage string
	// All makes the need a fan-in: every instance of Stage.
	All bool
	Pos Pos
}

var (
	nameRE      = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	stageNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	varNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
)

// MaxNameBytes is the longest experiment name or instance id: each names a
// folder, and file systems refuse longer names.
const MaxNameBytes = 255

// checkFolderName says what is wrong with an experiment name, or "".
func checkFolderName(s string) string {
	switch {
	case !nameRE.MatchString(s):
		return fmt.Sprintf("%q may only contain letters, digits, '.', '_' and '-' (it names folders)", s)
	case strings.HasPrefix(s, "."):
		// "." and ".." are the runs folder itself and its parent; other
		// dot names hide the results and look like the store's own
		// temporary entries.
		return fmt.Sprintf("%q may not start with '.' (it names a folder under runs/); start it with a letter or digit", s)
	case len(s) > MaxNameBytes:
		return fmt.Sprintf("%s… is %d bytes; it names a folder, which may be at most %d bytes: shorten it", clip(s, 20), len(s), MaxNameBytes)
	}
	return ""
}

// clip shortens s to at most n bytes, at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var (
	topKeys   = []string{"name", "description", "matrix", "stages", "executor"}
	stageKeys = []string{"uses", "needs", "with", "resources", "repeat"}
	needKeys  = []string{"stage", "all"}
)

// Parse decodes an experiment strictly. path is used in error messages only.
func Parse(path string, data []byte) (*File, error) {
	root, err := parseYAML(path, data)
	if err != nil {
		return nil, err
	}
	p := &problems{file: path}
	f := decodeFile(p, path, root)
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlHints say what to do about the YAML parser's terse messages. The
// parser reports the line where the enclosing block starts, not the bad line,
// so the hints say where to look.
var yamlHints = []struct{ prefix, hint string }{
	{"did not find expected key", "; a line in the block starting here is indented differently from the keys beside it (indent with spaces, keys of one mapping line up)"},
	{"could not find expected ':'", "; a line in the block starting here is not `key: value` (a missing colon, or a multi-line string that needs `|`)"},
	{"mapping values are not allowed in this context", "; a value holds ': ' (quote it) or a key is indented under a value"},
	{"found character that cannot start any token", "; indent with spaces, not tabs, and quote values that start with @ or `"},
	{"did not find expected ',' or", "; a flow list [..] or mapping {..} starting here is not closed, or a value in it needs quotes"},
}

func yamlHint(msg string) string {
	for _, h := range yamlHints {
		if strings.HasPrefix(msg, h.prefix) {
			return h.hint
		}
	}
	return ""
}

// parseYAML returns the top mapping node, turning syntax errors into
// positioned errors. The file holds one document: a second one (after
// `---`) would otherwise be ignored without a word.
func parseYAML(path string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, yamlError(path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: path, Line: 1, Col: 1, Msg: "the file is empty: an experiment needs at least `name:` and `stages:`"}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, yamlError(path, err)
	case len(next.Content) == 1 && isNull(next.Content[0]) && next.Content[0].Value == "":
		// An empty document after a trailing `---` holds nothing to lose.
	default:
		return nil, &Error{File: path, Line: next.Line, Col: next.Column, Msg: "a second YAML document starts here; an experiment file holds one document: remove the `---` and what follows, or move it to a file of its own"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: path, Line: root.Line, Col: root.Column, Msg: fmt.Sprintf("expected a mapping with name:, stages: (and optionally description:, matrix:), got %s", describe(root))}
	}
	return root, nil
}

func yamlError(path string, err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if strings.HasPrefix(m[2], "did not find expected") {
			// yaml.v3 adds one to scanner errors' 0-based lines but not
			// to the parser's ("did not find expected …").
			line++
		}
		return &Error{File: path, Line: line, Col: 1, Msg: "invalid YAML: " + m[2] + yamlHint(m[2])}
	}
	return &Error{File: path, Line: 1, Col: 1, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

// describe names a node's type the way a user thinks of it.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		case "!!str":
			return fmt.Sprintf("a string (%q)", n.Value)
		}
		return "a scalar (" + n.Value + ")"
	}
	return "nothing"
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// entries walks a mapping, reporting duplicate keys (yaml.v3 keeps them in
// a node tree) and non-string keys.
func entries(p *problems, where string, m *yaml.Node, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]Pos{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(posOf(k), "%s: keys must be plain names, got %s", where, describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.add(posOf(k), "%s: duplicate key %q (first at line %d); each key may appear once", where, k.Value, first.Line)
			continue
		}
		seen[k.Value] = posOf(k)
		fn(k.Value, k, v)
	}
}

func decodeFile(p *problems, path string, root *yaml.Node) *File {
	f := &File{Path: path}
	var nameSeen, stagesSeen bool
	entries(p, "experiment", root, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			nameSeen = true
			f.NamePos = posOf(k)
			s, ok := scalarString(v)
			if !ok {
				p.add(posOf(v), "name: expected a string, got %s", describe(v))
				return
			}
			if msg := checkFolderName(s); msg != "" {
				p.add(posOf(v), "name: %s%s", msg, fromSet(v))
				return
			}
			f.Name = s
		case "description":
			if isNull(v) {
				return
			}
			s, ok := scalarString(v)
			if !ok {
				p.add(posOf(v), "description: expected a string, got %s", describe(v))
				return
			}
			f.Description = s
		case "matrix":
			f.MatrixPos = posOf(k)
			f.Matrix = decodeMatrix(p, v)
		case "executor":
			f.Slurm = decodeExecutor(p, v)
		case "stages":
			stagesSeen = true
			f.StagesPos = posOf(k)
			f.Stages = decodeStages(p, k, v)
		default:
			// x- keys hold YAML anchors to reuse in stages, as in compose files.
			if strings.HasPrefix(key, "x-") {
				return
			}
			p.add(posOf(k), "unknown key %q%s; allowed top-level keys: %s (or x-NAME for anchors)", key, didYouMean(key, topKeys), quoteList(topKeys))
		}
	})
	if !nameSeen {
		p.add(posOf(root), "missing `name:`: give the experiment a name (letters, digits, '.', '_', '-')")
	}
	if !stagesSeen {
		p.add(posOf(root), "missing `stages:`: an experiment needs at least one stage")
	}
	return f
}

// scalarString accepts any non-null scalar as a string, as users write
// `name: 2024` and mean text.
func scalarString(n *yaml.Node) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", false
	}
	return n.Value, true
}

func decodeMatrix(p *problems, v *yaml.Node) []*MatrixVar {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		p.add(posOf(v), "matrix: expected a mapping of variable names to lists of values (e.g. `rate: [1, 2, 4]`), got %s", describe(v))
		return nil
	}
	var out []*MatrixVar
	entries(p, "matrix", v, func(name string, k, list *yaml.Node) {
		if !varNameRE.MatchString(name) {
			p.add(posOf(k), "matrix: variable name %q must start with a letter or '_' and contain only letters, digits, '_' and '-'", name)
			return
		}
		if list.Kind != yaml.SequenceNode {
			p.add(posOf(list), "matrix.%s: expected a list of values (e.g. [1, 2, 4]), got %s", name, describe(list))
			out = append(out, &MatrixVar{Name: name, Pos: posOf(k)}) // still defined: no "undefined" noise
			return
		}
		if len(list.Content) == 0 {
			p.add(posOf(k), "matrix.%s: the list is empty; give at least one value or remove the variable", name)
			out = append(out, &MatrixVar{Name: name, Pos: posOf(k)})
			return
		}
		mv := &MatrixVar{Name: name, Pos: posOf(k)}
		seen := map[string]Pos{}
		for _, item := range list.Content {
			item = deref(item)
			if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				p.add(posOf(item), "matrix.%s: values must be numbers, strings or booleans, got %s", name, describe(item))
				continue
			}
			val, err := scalarValue(item)
			if err != nil {
				p.add(posOf(item), "matrix.%s: %v", name, err)
				continue
			}
			text := Format(val)
			if strings.ContainsAny(text, "/\\,=[]\"'") || strings.IndexFunc(text, isSpaceOrControl) >= 0 || text == "" {
				p.add(posOf(item), "matrix.%s: value %q cannot name an instance folder; use a short name without spaces, quotes, '/', '\\', ',', '=', '[' or ']'", name, text)
				continue
			}
			if first, dup := seen[text]; dup {
				p.add(posOf(item), "matrix.%s: duplicate value %s (first at line %d)", name, text, first.Line)
				continue
			}
			seen[text] = posOf(item)
			mv.Values = append(mv.Values, val)
			mv.ValuePos = append(mv.ValuePos, posOf(item))
		}
		// A variable with a bad value is still defined, so uses of it do
		// not add "undefined variable" noise; the error above stops loading.
		out = append(out, mv)
	})
	return out
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

func decodeStages(p *problems, key, v *yaml.Node) []*Stage {
	if v.Kind != yaml.MappingNode {
		p.add(posOf(v), "stages: expected a mapping of stage names to stages (e.g. `bench: {uses: real-bench}`), got %s", describe(v))
		return nil
	}
	if len(v.Content) == 0 {
		p.add(posOf(key), "stages: no stages; add at least one (e.g. `hello: {uses: shell, with: {command: echo hi}}`)")
		return nil
	}
	var out []*Stage
	entries(p, "stages", v, func(name string, k, sv *yaml.Node) {
		if !stageNameRE.MatchString(name) {
			p.add(posOf(k), "stages: name %q may only contain letters, digits, '_' and '-' (and not start with '-')", name)
			return
		}
		if len(name) > MaxNameBytes {
			p.add(posOf(k), "stages: name %s… is %d bytes; it names folders, which may be at most %d bytes: shorten it", clip(name, 20), len(name), MaxNameBytes)
			return
		}
		if sv.Kind != yaml.MappingNode {
			p.add(posOf(sv), "stages.%s: expected a mapping with uses: (and optionally needs:, with:), got %s", name, describe(sv))
			return
		}
		st := &Stage{Name: name, Pos: posOf(k), WithPos: posOf(k)}
		var usesSeen bool
		entries(p, "stages."+name, sv, func(key string, kk, vv *yaml.Node) {
			switch key {
			case "uses":
				usesSeen = true
				st.UsesPos = posOf(vv)
				s, ok := scalarString(vv)
				if !ok || vv.ShortTag() != "!!str" {
					p.add(posOf(vv), "stages.%s.uses: expected a stage kind name (a string), got %s", name, describe(vv))
					return
				}
				st.Uses = s
			case "needs":
				st.Needs = decodeNeeds(p, name, vv)
			case "repeat":
				st.RepeatPos = posOf(kk)
				st.Repeats = decodeRepeat(p, name, vv)
			case "with":
				st.WithPos = posOf(kk)
				if isNull(vv) {
					return
				}
				if vv.Kind != yaml.MappingNode {
					p.add(posOf(vv), "stages.%s.with: expected a mapping of parameters, got %s", name, describe(vv))
					return
				}
				budget := maxWithNodes
				if err := aliasSafe(vv, map[*yaml.Node]bool{}, &budget); err != nil {
					p.add(posOf(vv), "stages.%s.with: %v", name, err)
					return
				}
				checkWithKeys(p, "stages."+name+".with", vv)
				st.With = vv
			case "resources":
				st.Resources = decodeStageResources(p, name, vv)
			default:
				p.add(posOf(kk), "stages.%s: unknown key %q%s; allowed keys: %s (parameters go under with:)", name, key, didYouMean(key, stageKeys), quoteList(stageKeys))
			}
		})
		if !usesSeen {
			p.add(posOf(k), "stages.%s: missing `uses:`: name the stage kind to run", name)
		}
		out = append(out, st)
	})
	return out
}

// maxWithNodes bounds a stage's params after aliases are expanded, so a
// "billion laughs" file fails fast instead of filling memory.
const maxWithNodes = 100000

// aliasSafe walks n as the params walkers will, failing on an alias that
// contains itself (which would recurse forever) or on a tree that expands
// beyond the budget.
func aliasSafe(n *yaml.Node, onPath map[*yaml.Node]bool, budget *int) error {
	*budget--
	if *budget < 0 {
		return fmt.Errorf("more than %d values after expanding aliases; use fewer or smaller aliases", maxWithNodes)
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || onPath[n.Alias] {
			return fmt.Errorf("alias *%s refers to a value that contains it; YAML params must be finite", n.Value)
		}
		onPath[n.Alias] = true
		defer delete(onPath, n.Alias)
		return aliasSafe(n.Alias, onPath, budget)
	}
	for _, c := range n.Content {
		if err := aliasSafe(c, onPath, budget); err != nil {
			return err
		}
	}
	return nil
}

// checkWithKeys rejects duplicate and non-string keys inside params, which
// would otherwise silently lose a value.
func checkWithKeys(p *problems, where string, n *yaml.Node) {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		entries(p, where, n, func(key string, k, v *yaml.Node) {
			if strings.Contains(key, "${{") {
				p.add(posOf(k), "%s: expressions are not allowed in keys (%q); use them in values", where, key)
			}
			checkWithKeys(p, where+"."+key, v)
		})
	case yaml.SequenceNode:
		for i, c := range n.Content {
			checkWithKeys(p, fmt.Sprintf("%s.%d", where, i), c)
		}
	}
}

func decodeNeeds(p *problems, stage string, v *yaml.Node) []Need {
	if isNull(v) {
		return nil
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
		// `needs: workload` is a common shorthand for a one-item list.
		return []Need{{Stage: v.Value, Pos: posOf(v)}}
	}
	if v.Kind != yaml.SequenceNode {
		p.add(posOf(v), "stages.%s.needs: expected a list of stage names or {stage: NAME, all: true} items, got %s", stage, describe(v))
		return nil
	}
	var out []Need
	for _, item := range v.Content {
		item = deref(item)
		switch {
		case item.Kind == yaml.ScalarNode && item.ShortTag() == "!!str":
			out = append(out, Need{Stage: item.Value, Pos: posOf(item)})
		case item.Kind == yaml.MappingNode:
			n := Need{Pos: posOf(item)}
			var stageSeen bool
			entries(p, "stages."+stage+".needs", item, func(key string, k, vv *yaml.Node) {
				switch key {
				case "stage":
					stageSeen = true
					s, ok := scalarString(vv)
					if !ok || vv.ShortTag() != "!!str" {
						p.add(posOf(vv), "stages.%s.needs: stage: expected a stage name, got %s", stage, describe(vv))
						return
					}
					n.Stage = s
					n.Pos = posOf(vv)
				case "all":
					if vv.Kind != yaml.ScalarNode || vv.ShortTag() != "!!bool" {
						p.add(posOf(vv), "stages.%s.needs: all: expected true or false, got %s", stage, describe(vv))
						return
					}
					n.All = vv.Value == "true" || vv.Value == "True" || vv.Value == "TRUE"
				default:
					p.add(posOf(k), "stages.%s.needs: unknown key %q%s; allowed keys: %s", stage, key, didYouMean(key, needKeys), quoteList(needKeys))
				}
			})
			if !stageSeen {
				p.add(posOf(item), "stages.%s.needs: missing `stage:` in {stage: NAME, all: true}", stage)
				continue
			}
			if n.Stage != "" {
				out = append(out, n)
			}
		default:
			p.add(posOf(item), "stages.%s.needs: each item must be a stage name or {stage: NAME, all: true}, got %s", stage, describe(item))
		}
	}
	return out
}

// scalarValue decodes a scalar with its YAML type: int, float64, bool,
// string or nil. Non-finite floats are refused because params are hashed as
// JSON.
func scalarValue(n *yaml.Node) (any, error) {
	// A string decodes to its text; skipping the decoder matters when a
	// matrix repeats every scalar for thousands of instances.
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return n.Value, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", describe(n), err)
	}
	if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return nil, fmt.Errorf("%s is not a finite number; params must be representable in JSON", n.Value)
	}
	return v, nil
}

// Format writes a matrix value canonically, as used in instance ids and in
// interpolation inside longer strings: integers (also integral floats) without
// a fraction, other floats in their shortest form.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}
