package stage

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// What a kind's output folder holds. A stage finds its inputs by what they
// hold, never by the needed stage's name: a workload input is the need that
// holds a workload, whatever the stage is called.
const (
	HoldsWorkload = "workload" // trace_lengths.csv, trace_intervals.csv, workload_meta.json
	HoldsRun      = "run"      // the canonical run folder (real or simulated)
	HoldsProfile  = "profile"  // Vidur's profile layout
	HoldsFit      = "fit"      // a fitted step model
	HoldsCompare  = "compare"  // one comparison (compare.json ...)
)

// WorkloadRole is the one input of a kind that measures or imports a run of
// a workload (real-bench, replay, serve-bench, vllm-result): the need that
// holds a workload, chosen with `workload: <stage>` when several do.
var WorkloadRole = Role{Name: "workload", Param: "workload", Holds: HoldsWorkload, Hint: "a workload stage"}

// Producer is implemented by kinds whose output other kinds read: Produces
// says what the output folder holds (one of the Holds constants).
type Producer interface {
	Produces() string
}

// HoldsOf is what kind k's outputs hold, or "" when it does not say (a
// shell stage's outputs are whatever its command writes).
func HoldsOf(k Kind) string {
	if p, ok := k.(Producer); ok {
		return p.Produces()
	}
	return ""
}

// holds is what an input's folder holds: as the executor recorded it, or,
// in a spec written without it, its kind's name (which is what the kinds
// producing workloads, profiles and fits are called).
func (in Input) holds() string {
	if in.Holds != "" {
		return in.Holds
	}
	return in.Kind
}

// Need is one entry of a stage's needs: the needed stage, its kind, what
// that kind's output holds, and whether the need is a fan-in (all: true).
type Need struct {
	Stage string
	Kind  string
	Holds string
	All   bool
}

// Role is one input a kind reads. It is filled by the needs that hold
// Holds (or whose kind is one of Kinds); when several do, the param named
// Param chooses one by its stage name. The same rule is applied when the
// experiment is loaded (CheckInputs, at the YAML line) and when the stage
// runs (FindInput, FindInputs).
type Role struct {
	// Name is the role as messages say it ("workload").
	Name string
	// Param chooses among several matching needs by stage name
	// (`workload: train-workload`); without one, several matching needs
	// are an error that says to keep one under needs:.
	Param string
	Holds string
	// Kinds fill the role whatever they hold (the vidur kind's runs are
	// the only inputs with Vidur's prediction tables).
	Kinds []string
	// Optional roles may stay empty; Many roles take every matching input
	// (a fan-in), others exactly one.
	Optional bool
	Many     bool
	// Hint is what to add under needs: when nothing matches ("a workload
	// stage").
	Hint string
}

// InputReader is implemented by kinds that read their inputs through
// roles, so that `gsim validate` checks them at the YAML line, before any
// stage runs.
type InputReader interface {
	InputRoles(params map[string]any) []Role
}

func (r Role) matches(holds, kind string) bool {
	return (r.Holds != "" && holds == r.Holds) || slices.Contains(r.Kinds, kind)
}

func (r Role) hint() string {
	if r.Hint != "" {
		return r.Hint
	}
	return "a stage whose output holds a " + r.Holds
}

// choice is the value of the role's choosing param, or "".
func (r Role) choice(params map[string]any) string {
	if r.Param == "" {
		return ""
	}
	s, _ := params[r.Param].(string)
	return s
}

// candidate is a need (load time) or an input's need (run time).
type candidate struct {
	stage, kind, holds string
	all                bool
}

// pick applies the rule: the needs matching r, narrowed by the choosing
// param. It returns the chosen stage names (none for an empty optional
// role), or an error: a *ParamError at the choosing param when that is what
// to fix, else a *NeedsError.
func (r Role) pick(params map[string]any, cands []candidate) ([]string, error) {
	var match, all []string
	for _, c := range cands {
		all = append(all, c.stage)
		if r.matches(c.holds, c.kind) {
			match = append(match, c.stage)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	slices.Sort(match)
	match = slices.Compact(match)
	if want := r.choice(params); want != "" {
		if slices.Contains(match, want) || r.unknown(cands, want) {
			return []string{want}, nil
		}
		if slices.Contains(all, want) {
			return nil, &ParamError{Path: r.Param, Msg: fmt.Sprintf("%q does not hold a %s (%s); name one of %s",
				want, r.what(), r.kindOf(cands, want), listOr(match, "no need does"))}
		}
		return nil, &ParamError{Path: r.Param, Msg: fmt.Sprintf("%q is not among the stage's needs (%s); add it to needs: or name one of %s",
			want, strings.Join(all, ", "), listOr(match, "none holds one"))}
	}
	switch {
	case len(match) == 0 && r.Optional:
		return nil, nil
	case len(match) == 0:
		return nil, &NeedsError{Msg: fmt.Sprintf("needs %s: add %s under needs: (needs now: %s)", r.what(), r.hint(), listOr(all, "none"))}
	case len(match) > 1 && !r.Many && r.Param != "":
		return nil, &ParamError{Path: r.Param, Msg: fmt.Sprintf("several needs hold a %s (%s): choose one with %s: <stage>",
			r.what(), strings.Join(match, ", "), r.Param)}
	case len(match) > 1 && !r.Many:
		return nil, &NeedsError{Msg: fmt.Sprintf("several needs hold a %s (%s) and the stage reads one: keep one of them under needs:",
			r.what(), strings.Join(match, ", "))}
	}
	if !r.Many {
		for _, c := range cands {
			if c.stage == match[0] && c.all {
				return nil, &NeedsError{Msg: fmt.Sprintf("need %s is a fan-in (all: true) but %s takes one %s per instance", match[0], r.Name, r.what())}
			}
		}
	}
	return match, nil
}

func (r Role) what() string {
	if r.Holds != "" {
		return r.Holds
	}
	return strings.Join(r.Kinds, " or ") + " output"
}

// unknown reports whether stage is a need whose content nothing says (an
// input of a spec written without kinds): a param naming it is taken at
// its word.
func (r Role) unknown(cands []candidate, stage string) bool {
	for _, c := range cands {
		if c.stage == stage {
			return c.kind == "" && c.holds == ""
		}
	}
	return false
}

func (r Role) kindOf(cands []candidate, stage string) string {
	for _, c := range cands {
		if c.stage == stage {
			if c.holds != "" {
				return "a " + c.kind + " stage, which holds a " + c.holds
			}
			return "a " + c.kind + " stage"
		}
	}
	return ""
}

func listOr(v []string, none string) string {
	if len(v) == 0 {
		return none
	}
	return strings.Join(v, ", ")
}

// NeedsError is a complaint about what a stage's needs: hold (the loader
// points at needs:), as *ParamError is one about a param.
type NeedsError struct{ Msg string }

func (e *NeedsError) Error() string { return e.Msg }

// CheckInputs applies roles to a stage's needs when the experiment is
// loaded. Errors about the choosing param are *ParamError (the loader
// points at its line); the others concern the stage's needs.
func CheckInputs(params map[string]any, needs []Need, roles []Role) error {
	cands := make([]candidate, len(needs))
	for i, n := range needs {
		cands[i] = candidate{stage: n.Stage, kind: n.Kind, holds: n.Holds, all: n.All}
	}
	var errs []error
	for _, r := range roles {
		if _, err := r.pick(params, cands); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FindInputs returns the inputs filling role r in spec, in need-name
// order (and cell order within a fan-in): one for an ordinary role, every
// one for a Many role, none for an empty optional role.
func FindInputs(spec *Spec, r Role) ([]Input, error) {
	var cands []candidate
	for _, name := range sortedNeeds(spec) {
		ins := spec.Inputs[name]
		if len(ins) == 0 {
			continue
		}
		cands = append(cands, candidate{stage: name, kind: ins[0].Kind, holds: ins[0].holds(), all: len(ins) > 1})
	}
	names, err := r.pick(spec.Params, cands)
	if err != nil {
		return nil, err
	}
	var out []Input
	for _, n := range names {
		out = append(out, spec.Inputs[n]...)
	}
	return out, nil
}

// FindInput is FindInputs for a role of one input; ok is false when an
// optional role is empty.
func FindInput(spec *Spec, r Role) (in Input, ok bool, err error) {
	ins, err := FindInputs(spec, r)
	if err != nil || len(ins) == 0 {
		return Input{}, false, err
	}
	if len(ins) != 1 {
		return Input{}, false, &NeedsError{Msg: fmt.Sprintf("%s has %d inputs; the stage takes one", r.Name, len(ins))}
	}
	return ins[0], true, nil
}

func sortedNeeds(spec *Spec) []string {
	names := make([]string, 0, len(spec.Inputs))
	for n := range spec.Inputs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
