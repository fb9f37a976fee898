package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// CompareKind is the `compare` stage: a reference run and candidate runs of
// one workload → summary.md, report.html, compare.json, tables/, figs/.
type CompareKind struct{ stage.Base }

// CompareParams are the `with:` of a compare stage.
type CompareParams struct {
	// Reference is the need whose run is the ground truth.
	Reference string `json:"reference"`
	// Workload names the need holding the workload folder when several
	// do; by default the one need that holds a workload. Every run is
	// checked against it (when there is none, against the reference).
	Workload string `json:"workload,omitempty"`
	// Candidates, when given, are the needs compared with the reference, in
	// this order; by default every other need that holds a run, in name
	// order.
	Candidates []string `json:"candidates,omitempty"`
	// Reruns are needs whose runs are further real runs of the reference's
	// workload on the same engine: with the reference's own repeats (a
	// reference stage with repeat:), they give the noise band.
	Reruns []string `json:"reruns,omitempty"`
	// Labels maps need names to display names.
	Labels map[string]string `json:"labels,omitempty"`
	Title  string            `json:"title,omitempty"`
	// TimeWindow is the width of the latency-over-time windows (a Go
	// duration); by default the narrowest of 1s, 2s, 5s, ... 24h that cuts
	// the run into at most 120 windows.
	TimeWindow string `json:"time_window,omitempty"`
}

func (CompareKind) Name() string    { return "compare" }
func (CompareKind) Version() string { return "2" }

// Produces implements stage.Producer: one comparison.
func (CompareKind) Produces() string { return stage.HoldsCompare }

// The inputs a compare stage reads, found by what the needs hold: the
// workload (optional) and the reference run, which with.reference names.
var (
	compareWorkloadRole  = stage.Role{Name: "workload", Param: "workload", Holds: stage.HoldsWorkload, Optional: true}
	compareReferenceRole = stage.Role{Name: "reference", Param: "reference", Holds: stage.HoldsRun, Hint: "the reference run's stage"}
)

// InputRoles implements stage.InputReader.
func (CompareKind) InputRoles(map[string]any) []stage.Role {
	return []stage.Role{compareWorkloadRole, compareReferenceRole}
}

func decodeCompare(params map[string]any) (*CompareParams, error) {
	var p CompareParams
	if err := stage.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if p.Reference == "" {
		return nil, &stage.ParamError{Path: "reference", Msg: "required: name the need whose run is the reference (for example the real GPU bench)"}
	}
	if p.TimeWindow != "" {
		if d, err := time.ParseDuration(p.TimeWindow); err != nil || d <= 0 {
			return nil, &stage.ParamError{Path: "time_window", Msg: fmt.Sprintf("%q (expected a positive Go duration such as 30s or 5m)", p.TimeWindow)}
		}
	}
	if p.Workload != "" && p.Workload == p.Reference {
		return nil, &stage.ParamError{Path: "workload", Msg: fmt.Sprintf("%q is also the reference; name the need that holds the workload folder", p.Workload)}
	}
	seen := map[string]bool{}
	for _, c := range p.Candidates {
		if c == p.Reference || c == p.Workload || seen[c] {
			return nil, &stage.ParamError{Path: "candidates", Msg: fmt.Sprintf("%q is listed twice or is the reference/workload; list each candidate run once", c)}
		}
		seen[c] = true
	}
	for _, r := range p.Reruns {
		if r == p.Reference || r == p.Workload || seen[r] {
			return nil, &stage.ParamError{Path: "reruns", Msg: fmt.Sprintf("%q is listed twice, or is the reference, the workload or a candidate; list each rerun need once (repeats of the reference stage are reruns already)", r)}
		}
		seen[r] = true
	}
	return &p, nil
}

// CheckNeeds implements stage.NeedsChecker: every need named in with: must
// be under needs:, so a typo fails at load time with its line.
func (CompareKind) CheckNeeds(params map[string]any, needs []string, _ map[string][]any) error {
	p, err := decodeCompare(params)
	if err != nil {
		return nil // CheckParams reports it
	}
	var errs []error
	check := func(path, name string) {
		if name != "" && !slices.Contains(needs, name) {
			errs = append(errs, &stage.ParamError{Path: path, Msg: fmt.Sprintf("%q is not among the stage's needs (%s); add it to needs: or fix the name",
				name, strings.Join(needs, ", "))})
		}
	}
	check("reference", p.Reference)
	check("workload", p.Workload)
	for i, c := range p.Candidates {
		check(fmt.Sprintf("candidates.%d", i), c)
	}
	for i, r := range p.Reruns {
		check(fmt.Sprintf("reruns.%d", i), r)
	}
	for _, n := range sortedKeys(p.Labels) {
		check("labels."+n, n)
	}
	return errors.Join(errs...)
}

// CheckParams validates `with:`.
func (CompareKind) CheckParams(params map[string]any) error {
	_, err := decodeCompare(params)
	return err
}

// compareInput maps a spec onto a CompareInput: candidates are every need
// other than the reference and the workload, in name order.
func compareInput(spec *stage.Spec) (CompareInput, error) {
	p, err := decodeCompare(spec.Params)
	if err != nil {
		return CompareInput{}, err
	}
	one := func(param, need string) (stage.Input, error) {
		ins, ok := spec.Inputs[need]
		if !ok {
			return stage.Input{}, fmt.Errorf("compare %s: with.%s: %q is not among the stage's needs (%s); add it to needs: or fix with.%s",
				spec.Instance, param, need, strings.Join(sortedKeys(spec.Inputs), ", "), param)
		}
		if len(ins) != 1 {
			return stage.Input{}, fmt.Errorf("compare %s: need %q has %d inputs; compare takes one run per need (use the sweep `report` kind for fan-in)", spec.Instance, need, len(ins))
		}
		return ins[0], nil
	}
	runInput := func(need string, in stage.Input) RunInput {
		return RunInput{Name: need, Label: p.Labels[need], Dir: in.Dir, Key: in.Key, Instance: in.Instance}
	}
	ci := CompareInput{Title: p.Title, Instance: spec.Instance, Key: spec.Key, Matrix: spec.Matrix}
	if p.TimeWindow != "" {
		ci.Window, _ = time.ParseDuration(p.TimeWindow)
	}
	// The reference need may hold several runs: the repeats of a stage
	// with repeat:. The first is the reference, the rest are its reruns.
	refs, ok := spec.Inputs[p.Reference]
	if !ok || len(refs) == 0 {
		return ci, fmt.Errorf("compare %s: with.reference: %q is not among the stage's needs (%s); add it to needs: or fix with.reference",
			spec.Instance, p.Reference, strings.Join(sortedKeys(spec.Inputs), ", "))
	}
	ci.Reference = runInput(p.Reference, refs[0])
	rerun := func(need string, in stage.Input) {
		k := len(ci.Reruns) + 2
		ri := runInput(need, in)
		ri.Name = fmt.Sprintf("%s#%d", p.Reference, k)
		ri.Label = fmt.Sprintf("%s, rerun %d", label(ci.Reference), k)
		ci.Reruns = append(ci.Reruns, ri)
	}
	for _, in := range refs[1:] {
		rerun(p.Reference, in)
	}
	for _, need := range p.Reruns {
		ins, ok := spec.Inputs[need]
		if !ok {
			return ci, fmt.Errorf("compare %s: with.reruns: %q is not among the stage's needs (%s); add it to needs: or fix with.reruns",
				spec.Instance, need, strings.Join(sortedKeys(spec.Inputs), ", "))
		}
		for _, in := range ins {
			rerun(need, in)
		}
	}
	w, hasWorkload, err := stage.FindInput(spec, compareWorkloadRole)
	if err != nil {
		return ci, fmt.Errorf("compare %s: %w", spec.Instance, err)
	}
	workloadNeed := ""
	if hasWorkload {
		ci.WorkloadDir, ci.WorkloadKey = w.Dir, w.Key
		workloadNeed = p.Workload
		for _, n := range sortedKeys(spec.Inputs) {
			if ins := spec.Inputs[n]; workloadNeed == "" && len(ins) == 1 && ins[0].Dir == w.Dir {
				workloadNeed = n
			}
		}
	}
	names := sortedKeys(spec.Inputs)
	cands := p.Candidates
	if cands == nil {
		for _, n := range names {
			// Every other need, save those known to hold something else
			// than a run.
			ins := spec.Inputs[n]
			if len(ins) == 0 || n == p.Reference || n == workloadNeed || slices.Contains(p.Reruns, n) {
				continue
			}
			if h := ins[0].Holds; h == "" || h == stage.HoldsRun {
				cands = append(cands, n)
			}
		}
	}
	for _, n := range cands {
		in, err := one("candidates", n)
		if err != nil {
			return ci, err
		}
		ci.Candidates = append(ci.Candidates, runInput(n, in))
	}
	if len(ci.Candidates) == 0 {
		return ci, fmt.Errorf("compare %s: no candidate runs: needs are %s; add the simulator stages to needs:", spec.Instance, strings.Join(names, ", "))
	}
	var unknown []string
	for n := range p.Labels {
		if _, ok := spec.Inputs[n]; !ok {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return ci, &stage.ParamError{Path: "labels", Msg: fmt.Sprintf("%s not among the needs (%s)", strings.Join(unknown, ", "), strings.Join(names, ", "))}
	}
	return ci, nil
}

// Run compares the runs.
func (CompareKind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	in, err := compareInput(spec)
	if err != nil {
		return err
	}
	env.Report(0, 1, "comparing")
	_, err = Compare(ctx, in, spec.OutDir, env.Log)
	if err != nil {
		return err
	}
	env.Report(1, 1, "done")
	return nil
}

// compareFiles are the outputs every comparison has.
var compareFiles = []string{
	"summary.md", "report.html", CompareFile,
	"tables/stats.csv", "tables/errors.csv", "tables/distances.csv", "tables/failed.csv",
	"figs/ttft_cdf.png", "figs/itl_cdf.png", "figs/tpot_cdf.png", "figs/e2e_cdf.png",
}

// Validate checks every output is present and non-empty (failed.csv holds
// at least its header).
func (CompareKind) Validate(spec *stage.Spec) error {
	files := append([]string{}, compareFiles...)
	res, err := ReadResult(spec.OutDir)
	if err != nil {
		return err
	}
	if res.HasSteps {
		files = append(files, "tables/batch.csv", "figs/batch_size_cdf.png")
	}
	return nonEmpty(spec.OutDir, files)
}

func nonEmpty(dir string, files []string) error {
	var errs []error
	for _, f := range files {
		st, err := os.Stat(filepath.Join(dir, f))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("output %s missing: %w", f, err))
		case st.Size() == 0:
			errs = append(errs, fmt.Errorf("output %s is empty", f))
		}
	}
	return errors.Join(errs...)
}
