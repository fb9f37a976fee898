package experiment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gsim-dev/gsim/internal/par"
	"github.com/gsim-dev/gsim/pkg/dag"
	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Options change how an experiment is loaded.
type Options struct {
	// Sets are "--set path=value" overrides, applied before expansion, e.g.
	// "stages.bench.with.rate=4" or "matrix.rate=[1,2]".
	Sets []string
	// Registry checks `uses:` kinds and each instance's params. Nil skips
	// both (for tools that only draw the graph).
	Registry *stage.Registry
}

// Load reads, overrides, validates and expands the experiment at path.
// Every problem found is returned at once, each an *Error, sorted by
// position and joined with errors.Join.
func Load(path string, opt Options) (*plan.Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read experiment: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("experiment %s: %w", path, err)
	}
	root, err := parseYAML(path, data)
	if err != nil {
		return nil, err
	}
	p := &problems{file: path}
	// A failed override leaves the tree as it was, so decoding goes on and
	// reports the file's own problems in the same pass.
	for _, s := range opt.Sets {
		applySet(p, root, s)
	}
	f := decodeFile(p, path, root)
	decodeOK := !p.any()
	refs := check(p, f, opt.Registry, decodeOK)
	if p.any() {
		return nil, p.err()
	}
	pl, err := expand(f, refs)
	if err != nil {
		return nil, err
	}
	pl.File = abs
	pl.BaseDir = filepath.Dir(abs)
	if opt.Registry != nil {
		checkParams(p, f, pl, opt.Registry)
		if p.any() {
			return nil, p.err()
		}
	}
	return pl, nil
}

// check runs the semantic checks. Cross-stage checks (needs, cycles, unused
// variables) only run on a file that decoded cleanly, as a half-decoded file
// would produce misleading follow-on errors. It returns the matrix variables
// each stage's own params use.
func check(p *problems, f *File, reg *stage.Registry, crossStage bool) map[string]map[string]bool {
	defined := map[string]bool{}
	for _, v := range f.Matrix {
		defined[v.Name] = true
	}
	byName := map[string]*Stage{}
	var names []string
	for _, s := range f.Stages {
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	refs := map[string]map[string]bool{}
	usedAny := map[string]bool{}
	for _, s := range f.Stages {
		if reg != nil && s.Uses != "" {
			if _, ok := reg.Lookup(s.Uses); !ok {
				p.add(s.UsesPos, "stages.%s.uses: unknown stage kind %q%s; known kinds: %s", s.Name, s.Uses, didYouMean(s.Uses, reg.Names()), quoteList(reg.Names()))
			}
		}
		used := map[string]bool{}
		if s.With != nil {
			scanRefs(p, "stages."+s.Name+".with", s.With, defined, used)
			if r := repeatRef(s.With); r != nil && s.Repeats == nil {
				p.add(posOf(r), "stages.%s.with: ${{ repeat.id }} is only defined in a stage with repeat:; add `repeat: N` (or a list of labels) to stages.%s", s.Name, s.Name)
			}
		}
		if s.Repeats != nil && defined[RepeatVar] {
			p.add(s.RepeatPos, "stages.%s.repeat: the matrix has a variable named %q, which names repeats in instance ids; rename the matrix variable", s.Name, RepeatVar)
		}
		refs[s.Name] = used
		for v := range used {
			usedAny[v] = true
		}
		seen := map[string]bool{}
		for _, n := range s.Needs {
			if n.Stage == s.Name {
				p.add(n.Pos, "stages.%s.needs: a stage cannot need itself; remove %q from its needs", s.Name, n.Stage)
				continue
			}
			if seen[n.Stage] {
				p.add(n.Pos, "stages.%s.needs: %q is listed twice; list each stage once", s.Name, n.Stage)
				continue
			}
			seen[n.Stage] = true
			if crossStage && byName[n.Stage] == nil {
				others := without(names, s.Name)
				p.add(n.Pos, "stages.%s.needs: unknown stage %q%s; stages: %s", s.Name, n.Stage, didYouMean(n.Stage, others), quoteList(others))
			}
		}
	}
	if !crossStage {
		return refs
	}
	for _, v := range f.Matrix {
		if !usedAny[v.Name] {
			p.add(v.Pos, "unused matrix variable %s: use it in a stage's with: as ${{ matrix.%s }} or remove it", v.Name, v.Name)
		}
	}
	checkCycles(p, f, byName)
	return refs
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// stageGraph is the stages' graph; a stage's need of itself, reported on
// its own, is left out.
func stageGraph(f *File) *dag.Graph {
	g := dag.New()
	for _, s := range f.Stages {
		var needs []string
		for _, n := range s.Needs {
			if n.Stage != s.Name {
				needs = append(needs, n.Stage)
			}
		}
		g.Add(s.Name, needs...)
	}
	return g
}

// checkCycles reports each cycle once, as a path, at the need that closes
// the cycle's first edge (from the earliest declared stage on it).
func checkCycles(p *problems, f *File, byName map[string]*Stage) {
	for _, cyc := range stageGraph(f).Cycles() {
		first := byName[cyc[0]]
		next := cyc[1%len(cyc)]
		at := first.Pos
		for _, n := range first.Needs {
			if n.Stage == next {
				at = n.Pos
				break
			}
		}
		p.add(at, "dependency cycle: %s; break the cycle by removing one of these needs", dag.Describe(cyc))
	}
}

// stageOrder is a topological order of stages with declaration order as the
// tie-break. The file must be acyclic.
func stageOrder(f *File) []*Stage {
	names, err := stageGraph(f).Order()
	if err != nil {
		panic("experiment: stageOrder on a cyclic file: " + err.Error())
	}
	byName := make(map[string]*Stage, len(f.Stages))
	for _, s := range f.Stages {
		byName[s.Name] = s
	}
	out := make([]*Stage, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

// MaxInstancesPerStage bounds a stage's expansion: beyond it a matrix is
// almost surely a mistake, and the plan alone would fill memory.
const MaxInstancesPerStage = 100000

// expand turns stages into instances, one per cell of the matrix variables
// each stage depends on.
func expand(f *File, refs map[string]map[string]bool) (*plan.Plan, error) {
	pl := &plan.Plan{Name: f.Name, Description: f.Description, Slurm: f.Slurm}
	order := map[string]int{}
	values := map[string][]any{}
	for i, v := range f.Matrix {
		pl.MatrixOrder = append(pl.MatrixOrder, v.Name)
		order[v.Name] = i
		values[v.Name] = v.Values
	}
	dims := map[string][]string{}
	repeats := map[string][]any{}
	instances := map[string][]*plan.Instance{}
	var long []error
	known := map[string]bool{}
	for _, s := range stageOrder(f) {
		set := map[string]bool{}
		for v := range refs[s.Name] {
			set[v] = true
		}
		for _, n := range s.Needs {
			if !n.All {
				for _, d := range dims[n.Stage] {
					set[d] = true
				}
			}
		}
		d := sortedBy(set, order)
		dims[s.Name] = d
		repeats[s.Name] = s.Repeats
		n := 1
		for _, v := range d {
			n *= len(values[v])
			if n > MaxInstancesPerStage {
				return nil, &Error{File: f.Path, Line: s.Pos.Line, Col: s.Pos.Col, Msg: fmt.Sprintf(
					"stage %s expands to more than %d instances over %s; sweep fewer values", s.Name, MaxInstancesPerStage, strings.Join(d, " x "))}
			}
		}
		all := cells(d, values)
		idDims := d
		if s.Repeats != nil {
			// Repeats are one more dimension of this stage's own
			// instances, never of its dependents: a stage that needs a
			// repeated stage gets every repeat of its cell.
			idDims = append(append([]string(nil), d...), RepeatVar)
			var rep []map[string]any
			for _, c := range all {
				rep = append(rep, repeatCells(c, s.Repeats)...)
			}
			all = rep
		}
		tooLong := false
		// Each cell's params are built from the stage's with: compiled
		// once, on every core: a big matrix has many.
		var params []map[string]any
		if s.With != nil && len(all) > 0 {
			with, err := compile(s.With)
			if err != nil {
				return nil, &Error{File: f.Path, Line: s.WithPos.Line, Col: s.WithPos.Col, Msg: fmt.Sprintf("stages.%s.with: %v", s.Name, err)}
			}
			params = make([]map[string]any, len(all))
			par.For(len(all), func(i int) { params[i] = with.value(all[i], f.Name).(map[string]any) })
		}
		for ci, cell := range all {
			id := InstanceID(s.Name, idDims, cell)
			if len(id) > MaxNameBytes && !tooLong {
				tooLong = true
				long = append(long, &Error{File: f.Path, Line: s.Pos.Line, Col: s.Pos.Col, Msg: fmt.Sprintf(
					"instance %s… of stage %s is %d bytes; it names a folder, which may be at most %d bytes: shorten the stage name or the values of %s",
					clip(id, 40), s.Name, len(id), MaxNameBytes, strings.Join(idDims, ", "))})
			}
			in := &plan.Instance{
				ID:    id,
				Stage: s.Name,
				Kind:  s.Uses,
				Cell:  cell,
				Line:  s.Pos.Line,
				Col:   s.Pos.Col,
				// Every instance of a stage asks for the same resources.
				Resources: s.Resources,
			}
			if s.Repeats != nil {
				in.Repeat = repeatIndex(cell, s.Repeats)
				in.RepeatID = Format(cell[RepeatVar])
			}
			in.Params = map[string]any{}
			if params != nil {
				in.Params = params[ci]
			}
			for _, n := range s.Needs {
				dep := plan.Dep{Stage: n.Stage, FanIn: n.All}
				if n.All {
					for _, up := range instances[n.Stage] {
						if agrees(up.Cell, cell) {
							dep.Instances = append(dep.Instances, up.ID)
						}
					}
				} else {
					// The upstream dims are a subset of this stage's, so the
					// upstream instance is the one named by this cell; of a
					// repeated upstream, every repeat of it, or the same
					// repeat when this stage repeats with the same ids.
					ids := []string{InstanceID(n.Stage, dims[n.Stage], cell)}
					if up := repeats[n.Stage]; up != nil {
						ids = ids[:0]
						upDims := append(append([]string(nil), dims[n.Stage]...), RepeatVar)
						for _, c := range repeatCells(cell, up) {
							if s.Repeats != nil && repeatIndex(cell, up) > 0 && Format(c[RepeatVar]) != Format(cell[RepeatVar]) {
								continue
							}
							ids = append(ids, InstanceID(n.Stage, upDims, c))
						}
					}
					for _, id := range ids {
						if !known[id] {
							return nil, fmt.Errorf("experiment: %s: need %s resolved to missing instance %s", in.ID, n.Stage, id)
						}
					}
					dep.Instances = ids
				}
				in.Needs = append(in.Needs, dep)
			}
			known[in.ID] = true
			instances[s.Name] = append(instances[s.Name], in)
			pl.Instances = append(pl.Instances, in)
		}
	}
	if len(long) > 0 {
		return nil, errors.Join(long...)
	}
	return pl, nil
}

// agrees reports whether two cells have the same value on every dimension
// both have. For a fan-in it picks every upstream cell compatible with this
// one: all of them when this stage has none of the upstream's dims.
func agrees(up, cell map[string]any) bool {
	for k, v := range up {
		if w, ok := cell[k]; ok && Format(w) != Format(v) {
			return false
		}
	}
	return true
}

func sortedBy(set map[string]bool, order map[string]int) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return order[out[i]] < order[out[j]] })
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cells is the cartesian product of the dims' values, the first dim varying
// slowest, values in declaration order.
func cells(dims []string, values map[string][]any) []map[string]any {
	out := []map[string]any{{}}
	for _, d := range dims {
		var next []map[string]any
		for _, c := range out {
			for _, v := range values[d] {
				nc := make(map[string]any, len(c)+1)
				for k, x := range c {
					nc[k] = x
				}
				nc[d] = v
				next = append(next, nc)
			}
		}
		out = next
	}
	return out
}

// InstanceID names an instance: "stage" or "stage[rate=4,policy=vllm]" with
// dims in matrix declaration order and values formatted canonically.
func InstanceID(stageName string, dims []string, cell map[string]any) string {
	if len(dims) == 0 {
		return stageName
	}
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = d + "=" + Format(cell[d])
	}
	return stageName + "[" + strings.Join(parts, ",") + "]"
}

// checkParams lets each kind check each instance's resolved params, mapping
// *stage.ParamError paths back to the YAML. The same complaint about several
// instances of a stage is reported once, naming them.
func checkParams(p *problems, f *File, pl *plan.Plan, reg *stage.Registry) {
	byName := map[string]*Stage{}
	for _, s := range f.Stages {
		byName[s.Name] = s
	}
	type complaint struct {
		at  Pos
		msg string
	}
	matrix := map[string][]any{}
	for _, mv := range f.Matrix {
		matrix[mv.Name] = mv.Values
	}
	var order []complaint
	kindOf := map[string]string{} // instance id -> kind, for kinds that read inputs
	for _, x := range pl.Instances {
		if k, ok := reg.Lookup(x.Kind); ok {
			if _, reads := k.(stage.InputReader); reads {
				for _, x := range pl.Instances {
					kindOf[x.ID] = x.Kind
				}
				break
			}
		}
	}
	who := map[complaint][]string{}
	count := map[string]int{}
	// Kinds check each instance on its own (a big matrix has many), on
	// every core; the complaints are gathered in instance order.
	found := make([][]error, len(pl.Instances))
	par.For(len(pl.Instances), func(i int) {
		in := pl.Instances[i]
		k, ok := reg.Lookup(in.Kind)
		if !ok {
			return
		}
		errs := flatten(k.CheckParams(in.Params))
		if nc, ok := k.(stage.NeedsChecker); ok && len(errs) == 0 {
			var needs []string
			for _, d := range in.Needs {
				needs = append(needs, d.Stage)
			}
			errs = flatten(nc.CheckNeeds(in.Params, needs, matrix))
		}
		if ir, ok := k.(stage.InputReader); ok && len(errs) == 0 {
			errs = flatten(stage.CheckInputs(in.Params, inputNeeds(kindOf, reg, in), ir.InputRoles(in.Params)))
		}
		if pc, ok := k.(stage.PathChecker); ok && len(errs) == 0 {
			errs = flatten(pc.CheckPaths(in.Params, pl.BaseDir))
		}
		found[i] = errs
	})
	for i, in := range pl.Instances {
		count[in.Stage]++
		s := byName[in.Stage]
		for _, e := range found[i] {
			c := complaint{at: s.WithPos, msg: e.Error()}
			var pe *stage.ParamError
			var ne *stage.NeedsError
			if errors.As(e, &ne) {
				c.at = needsPos(s)
			}
			if errors.As(e, &pe) {
				var from string
				c.at, from = paramPos(s, pe.Path)
				if from != "" {
					c.msg += " (the value comes from --set " + from + ")"
				}
			}
			if _, seen := who[c]; !seen {
				order = append(order, c)
			}
			who[c] = append(who[c], in.ID)
		}
	}
	for _, c := range order {
		ids := who[c]
		stageName := pl.Lookup(ids[0]).Stage
		var subject string
		switch {
		case len(ids) == 1:
			subject = ids[0]
		case len(ids) == count[stageName]:
			subject = fmt.Sprintf("%s (all %d instances)", stageName, len(ids))
		default:
			subject = strings.Join(ids, ", ")
		}
		p.add(c.at, "%s: %s", subject, c.msg)
	}
}

// inputNeeds describes an instance's needs for stage.CheckInputs: each
// needed stage with its kind and what that kind's outputs hold.
func inputNeeds(kindOf map[string]string, reg *stage.Registry, in *plan.Instance) []stage.Need {
	var out []stage.Need
	for _, d := range in.Needs {
		n := stage.Need{Stage: d.Stage, All: d.FanIn}
		if len(d.Instances) > 0 {
			n.Kind = kindOf[d.Instances[0]]
			if k, ok := reg.Lookup(n.Kind); ok {
				n.Holds = stage.HoldsOf(k)
			}
		}
		out = append(out, n)
	}
	return out
}

// needsPos is where a complaint about a stage's needs points: its first
// need, or the stage's key when it has none.
func needsPos(s *Stage) Pos {
	if len(s.Needs) > 0 {
		return s.Needs[0].Pos
	}
	return s.Pos
}

// flatten unpacks errors.Join trees into their leaves.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// paramPos finds a dotted param path (list indexes as numbers) in the stage's
// with: tree and returns the position of the deepest part that exists, so a
// missing required param points at its parent (or at with:). from is the
// --set override (PATH=VALUE) that put a value on the path there, if any.
func paramPos(s *Stage, path string) (at Pos, from string) {
	at = s.WithPos
	if s.With == nil || path == "" {
		return at, ""
	}
	// encoding/json names an unknown field by its leaf name only; when that
	// name is not a top-level param, a unique key of that name anywhere in
	// with: is the one meant.
	if !strings.Contains(path, ".") {
		if k, _ := lookupEntry(s.With, path); k == nil {
			var found []*yaml.Node
			findKeys(s.With, path, &found)
			if len(found) == 1 {
				return posOf(found[0]), ""
			}
		}
	}
	cur := s.With
	mark := func(n *yaml.Node) {
		if c, ok := strings.CutPrefix(n.LineComment, setMark); ok && from == "" {
			from = c
		}
	}
	mark(cur)
	for _, part := range strings.Split(path, ".") {
		cur = deref(cur)
		switch cur.Kind {
		case yaml.MappingNode:
			k, v := lookupEntry(cur, part)
			if k == nil {
				return at, from
			}
			at, cur = posOf(k), v
		case yaml.SequenceNode:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(cur.Content) {
				return at, from
			}
			cur = cur.Content[i]
			at = posOf(cur)
		default:
			return at, from
		}
		mark(cur)
	}
	return at, from
}

func findKeys(n *yaml.Node, key string, out *[]*yaml.Node) {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				*out = append(*out, n.Content[i])
			}
			findKeys(n.Content[i+1], key, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			findKeys(c, key, out)
		}
	}
}
