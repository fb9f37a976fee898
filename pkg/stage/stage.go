// Package stage defines the contract between gsim's engine and the things it
// runs: a stage Kind turns a Spec (resolved params, input folders, an output
// folder) into files. The engine never looks inside a kind; kinds never look at
// the graph, the store or other instances.
package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/gsim-dev/gsim/internal/plainjson"
	"github.com/gsim-dev/gsim/pkg/suggest"
)

// SpecVersion is bumped when the Spec JSON changes incompatibly, because
// external runners parse it.
const SpecVersion = 1

// Spec is everything one stage instance needs to run. It is written as
// spec.json for subprocess and external runners, so it must stay plain data.
type Spec struct {
	SchemaVersion int `json:"schema_version"`
	// Experiment is the experiment's name; ExperimentFile its absolute path.
	Experiment     string `json:"experiment"`
	ExperimentFile string `json:"experiment_file"`
	// BaseDir is the directory relative paths in params resolve against (the
	// experiment file's directory), so a run does not depend on the caller's cwd.
	BaseDir string `json:"base_dir"`
	// Stage is the stage's name in the YAML, Instance the expanded instance id
	// (for example "bench[rate=4]"), Kind the stage kind.
	Stage    string `json:"stage"`
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	// Params are the fully resolved parameters (matrix values substituted).
	Params map[string]any `json:"params"`
	// Matrix is this instance's matrix cell (empty for shared instances).
	Matrix map[string]any `json:"matrix,omitempty"`
	// Inputs maps each needed stage name to its upstream instances' outputs:
	// one entry for an ordinary need, one per cell for a fan-in need, in the
	// matrix's declaration order.
	Inputs map[string][]Input `json:"inputs"`
	// OutDir is the staging folder the stage writes into. It is empty at start
	// and becomes the artifact only if the stage succeeds and validates.
	OutDir string `json:"out_dir"`
}

// Input is one upstream instance's completed output folder.
type Input struct {
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	// Holds is what the input's kind produces (HoldsRun, ...), by which
	// kinds find their inputs (FindInputs).
	Holds  string         `json:"holds,omitempty"`
	Key    string         `json:"key"`
	Dir    string         `json:"dir"`
	Matrix map[string]any `json:"matrix,omitempty"`
}

// Env is what the engine lends a running stage.
type Env struct {
	// Log receives the stage's own log lines (external runners' stdout and
	// stderr go here too). It ends up as stage.log in the stage folder.
	Log io.Writer
	// Progress reports how far the stage is; total <= 0 means unknown.
	Progress func(done, total float64, msg string)
	// Gsim is the path of the running gsim binary, for kinds that re-invoke it.
	Gsim string
	// Tag marks every process RunCommand starts (TagVar in its environment),
	// so a later attempt can end processes a killed gsim left behind.
	Tag string
	// GPUs are the devices the executor gave this attempt (ids as
	// CUDA_VISIBLE_DEVICES takes them); RunCommand makes them the only ones
	// its process sees. Empty: the environment is left as it is.
	GPUs []string
}

// Report forwards progress if anyone listens.
func (e Env) Report(done, total float64, msg string) {
	if e.Progress != nil {
		e.Progress(done, total, msg)
	}
}

// Kind is a stage implementation.
type Kind interface {
	// Name is the value users write in `uses:`.
	Name() string
	// Version is the runner identity of a built-in kind. Bump it whenever the
	// kind's outputs for the same params and inputs could change, so stale
	// artifacts are not reused.
	Version() string
	// CheckParams validates resolved params before anything runs (gsim
	// validate, gsim run). Return *ParamError values (joined with errors.Join)
	// so the experiment loader can point at the YAML line of the param.
	CheckParams(params map[string]any) error
	// Fingerprint returns extra content identity that is not in params: the
	// digests of files the params name (a trace CSV, a recorded run folder)
	// and, for external runners, of the runner's own files. Keys of the map
	// are stable labels ("file:trace.csv", "runner:run.py"); values digests.
	Fingerprint(params map[string]any, baseDir string) (map[string]string, error)
	// Resources the instance holds while it runs, e.g. {"gpu": 1}.
	Resources(params map[string]any) map[string]int
	// Run produces the outputs in spec.OutDir.
	Run(ctx context.Context, spec *Spec, env Env) error
	// Validate checks a finished OutDir before it is adopted. A kind that
	// cannot tell returns nil.
	Validate(spec *Spec) error
}

// NeedsChecker is implemented by kinds whose params name needed stages or
// matrix variables and values (compare's reference, report's x, fit's
// train), so that a wrong name is reported when the experiment is loaded,
// at its line, rather than after every upstream stage has run. needs are
// the stage names under needs:, in order; matrix maps the experiment's
// matrix variables to their values. Errors are *ParamError where they
// concern one param.
type NeedsChecker interface {
	CheckNeeds(params map[string]any, needs []string, matrix map[string][]any) error
}

// Volatile is implemented by kinds whose outputs include files that record
// when or where they ran rather than what they computed (workload_meta.json's
// created_at). Those files stay in the object and are verified, but they are
// left out of the output digest, so a forced rerun that computes the same
// result does not invalidate everything downstream.
type Volatile interface {
	VolatileFiles() []string
}

// ParamError names one bad parameter by its dotted path under `with:`
// (for example "arrival.rate") and says what to do.
type ParamError struct {
	Path string
	Msg  string
}

func (e *ParamError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return fmt.Sprintf("with.%s: %s", e.Path, e.Msg)
}

// DecodeParams decodes params into a typed struct (json tags), rejecting
// unknown fields, so that a typo in `with:` is an error and not a default.
func DecodeParams(params map[string]any, out any) error {
	b, ok := plainjson.Marshal(params)
	if !ok {
		var err error
		if b, err = json.Marshal(params); err != nil {
			return &ParamError{Msg: fmt.Sprintf("params are not encodable: %v", err)}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return paramDecodeError(err, params, out)
	}
	return nil
}

func paramDecodeError(err error, params map[string]any, out any) error {
	var ute *json.UnmarshalTypeError
	if asType(err, &ute) {
		return &ParamError{Path: ute.Field, Msg: fmt.Sprintf("expected %s, got %s", typeWords(ute.Type), valueWords(ute.Value))}
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		f := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		// encoding/json names only the leaf; the user needs the whole path
		// (arrival.rat, not rat) to find it under with:, and the names that
		// are allowed there.
		full, parent := unknownPath(params, reflect.TypeOf(out), "", f)
		if full == "" {
			return &ParamError{Path: f, Msg: "unknown parameter; check the kind's parameter list in docs/stages.md"}
		}
		names := fieldNames(parent)
		where := "with:"
		if i := strings.LastIndex(full, "."); i >= 0 {
			where = "with." + full[:i] + ":"
		}
		return &ParamError{Path: full, Msg: fmt.Sprintf("unknown parameter%s; %s takes %s",
			suggest.DidYouMean(f, names), where, strings.Join(names, ", "))}
	}
	return &ParamError{Msg: msg}
}

// typeWords says a Go type the way the YAML user writes its values.
func typeWords(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(typeWords(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value)"
	case reflect.Interface:
		return "a value"
	}
	return t.String()
}

// valueWords turns encoding/json's value description ("number 2.5",
// "string", "array") into the YAML user's words.
func valueWords(v string) string {
	kind, rest, _ := strings.Cut(v, " ")
	words := map[string]string{"string": "a string", "number": "a number", "bool": "true/false",
		"array": "a list", "object": "a mapping"}[kind]
	if words == "" {
		return v
	}
	if rest != "" {
		return words + " " + rest
	}
	return words
}

// unknownPath finds the dotted path (list indexes as numbers) of the first
// key named leaf in params, in the sorted order encoding/json met it, that
// the type t has no field for, and the struct type it is missing from.
func unknownPath(v any, t reflect.Type, prefix, leaf string) (string, reflect.Type) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "", nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return "", nil
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := jsonField(t, k)
			if !ok {
				if k == leaf {
					return prefix + k, t
				}
				continue
			}
			if p, pt := unknownPath(m[k], ft, prefix+k+".", leaf); p != "" {
				return p, pt
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if p, pt := unknownPath(m[k], t.Elem(), prefix+k+".", leaf); p != "" {
					return p, pt
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if l, ok := v.([]any); ok {
			for i, e := range l {
				if p, pt := unknownPath(e, t.Elem(), fmt.Sprintf("%s%d.", prefix, i), leaf); p != "" {
					return p, pt
				}
			}
		}
	}
	return "", nil
}

// fieldNames lists the keys a struct type decodes from, in declaration
// order (the order the kind's docs list them in).
func fieldNames(t reflect.Type) []string {
	var out []string
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || (f.Anonymous && f.Tag.Get("json") == "") {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// jsonField is the type of t's field that encoding/json decodes key into
// (exact name first, then case-insensitive, as encoding/json matches).
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	var fold reflect.Type
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || (f.Anonymous && f.Tag.Get("json") == "") {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f.Type, true
		}
		if fold == nil && strings.EqualFold(name, key) {
			fold = f.Type
		}
	}
	return fold, fold != nil
}

func asType(err error, target **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*target = t
	}
	return ok
}

// Registry maps kind names to implementations.
type Registry struct {
	kinds map[string]Kind
}

// NewRegistry returns a registry holding the given kinds.
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{kinds: map[string]Kind{}}
	for _, k := range kinds {
		r.Register(k)
	}
	return r
}

// Register adds a kind; registering a name twice is a programming error.
func (r *Registry) Register(k Kind) {
	if _, dup := r.kinds[k.Name()]; dup {
		panic("stage: kind registered twice: " + k.Name())
	}
	r.kinds[k.Name()] = k
}

// Lookup returns the kind named name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Names lists registered kinds, sorted, for error messages.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Base gives a kind the usual defaults; embed it and override what differs.
type Base struct{}

func (Base) CheckParams(map[string]any) error { return nil }
func (Base) Fingerprint(map[string]any, string) (map[string]string, error) {
	return nil, nil
}
func (Base) Resources(map[string]any) map[string]int { return nil }
func (Base) Validate(*Spec) error                    { return nil }
