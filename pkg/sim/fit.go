package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Files the fit stage writes.
const (
	StepModelFile = "step_model.json"
	FitReportFile = "fit.md"
)

// FitVersion is the fit kind's runner identity.
const FitVersion = "4"

// FitKind is the `fit` stage kind: it fits the step-model predictor to the
// step_metrics.csv of real runs (a fan-in over a bench stage), on the cells
// `train` selects; the others are held out for the fidelity check.
type FitKind struct{ stage.Base }

// NewFitKind returns the fit kind.
func NewFitKind() stage.Kind { return FitKind{} }

// FitParams are the `with:` of a fit stage.
type FitParams struct {
	// Train maps a matrix variable to the values whose cells are trained
	// on, e.g. {rate: [1, 4, 16]}. Empty: every input cell.
	Train map[string][]any `json:"train"`
	// Features is the model form (see predict.AllFeatures); empty: the
	// default form.
	Features []string `json:"features"`
	// QPadding and KVPadding override the shape padding read from the
	// training runs' run_meta.json.
	QPadding  *int64 `json:"q_padding"`
	KVPadding *int64 `json:"kv_padding"`
}

func decodeFitParams(raw map[string]any) (*FitParams, error) {
	var p FitParams
	if err := stage.DecodeParams(raw, &p); err != nil {
		return nil, err
	}
	var errs []error
	for _, f := range p.Features {
		if !slices.Contains(predict.AllFeatures, f) {
			errs = append(errs, &stage.ParamError{Path: "features", Msg: fmt.Sprintf("unknown feature %q; use some of %v", f, predict.AllFeatures)})
		}
	}
	for k, vs := range p.Train {
		if len(vs) == 0 {
			errs = append(errs, &stage.ParamError{Path: "train." + k, Msg: "empty list; name the matrix values to train on"})
		}
	}
	return &p, errors.Join(errs...)
}

func (FitKind) Name() string    { return "fit" }
func (FitKind) Version() string { return FitVersion }

// Produces implements stage.Producer: a fitted step model.
func (FitKind) Produces() string { return stage.HoldsFit }

// fitRunsRole is what a fit reads: every need that holds a run (fan-ins
// over real runs).
var fitRunsRole = stage.Role{Name: "runs", Holds: stage.HoldsRun, Many: true, Hint: "a fan-in over real runs ({stage: real, all: true})"}

// InputRoles implements stage.InputReader.
func (FitKind) InputRoles(map[string]any) []stage.Role { return []stage.Role{fitRunsRole} }

func (FitKind) CheckParams(params map[string]any) error {
	_, err := decodeFitParams(params)
	return err
}

// CheckNeeds implements stage.NeedsChecker: each variable of with.train must
// be a matrix variable and name at least one of its values, or the fit
// would find no training cell only after every real run had been made.
// (Some values missing is fine: `--set matrix.rate=[...]` narrows a sweep.)
func (FitKind) CheckNeeds(params map[string]any, _ []string, matrix map[string][]any) error {
	p, err := decodeFitParams(params)
	if err != nil {
		return nil // CheckParams reports it
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(p.Train)) {
		have, ok := matrix[k]
		if !ok {
			errs = append(errs, &stage.ParamError{Path: "train." + k, Msg: fmt.Sprintf("%q is not a matrix variable (the matrix has %s); train on matrix values",
				k, strings.Join(slices.Sorted(maps.Keys(matrix)), ", "))})
			continue
		}
		if !slices.ContainsFunc(p.Train[k], func(x any) bool {
			return slices.ContainsFunc(have, func(v any) bool { return sameValue(x, v) })
		}) {
			errs = append(errs, &stage.ParamError{Path: "train." + k, Msg: fmt.Sprintf("%s selects no cell: matrix.%s is %s; train on some of those values",
				fmtValues(p.Train[k]), k, fmtValues(have))})
		}
	}
	return errors.Join(errs...)
}

func fmtValues(vs []any) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprint(v)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// sameValue compares matrix values from YAML (ints and floats mix freely).
func sameValue(a, b any) bool {
	fa, okA := toFloat(a)
	fb, okB := toFloat(b)
	if okA && okB {
		return fa == fb
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

// Selected reports whether a cell is in the training set.
func (p *FitParams) Selected(cell map[string]any) bool {
	for k, vs := range p.Train {
		v, ok := cell[k]
		if !ok {
			return false
		}
		if !slices.ContainsFunc(vs, func(x any) bool { return sameValue(x, v) }) {
			return false
		}
	}
	return true
}

// trainMiss says, per variable of train, what was asked and what the input
// cells have, in YAML words ("rate: [3, 5], the inputs have rate 2, 4, 6").
func trainMiss(train map[string][]any, cells []map[string]any) string {
	vars := make([]string, 0, len(train))
	for k := range train {
		vars = append(vars, k)
	}
	slices.Sort(vars)
	have := map[string]bool{}
	for _, c := range cells {
		for k := range c {
			have[k] = true
		}
	}
	haveVars := make([]string, 0, len(have))
	for k := range have {
		haveVars = append(haveVars, k)
	}
	slices.Sort(haveVars)
	var parts []string
	for _, k := range vars {
		asked := make([]string, len(train[k]))
		for i, v := range train[k] {
			asked[i] = fmt.Sprint(v)
		}
		part := fmt.Sprintf("%s: [%s]", k, strings.Join(asked, ", "))
		if !have[k] {
			if len(haveVars) == 0 {
				part += ", but the inputs are not a matrix (fit them all: leave train out)"
			} else {
				part += fmt.Sprintf(", but the inputs have no matrix variable %q (they have %s)", k, strings.Join(haveVars, ", "))
			}
			parts = append(parts, part)
			continue
		}
		var vals []string
		for _, c := range cells {
			if v, ok := c[k]; ok && !slices.Contains(vals, fmt.Sprint(v)) {
				vals = append(vals, fmt.Sprint(v))
			}
		}
		parts = append(parts, part+fmt.Sprintf(", the inputs have %s %s", k, strings.Join(vals, ", ")))
	}
	return strings.Join(parts, "; ")
}

type fitCell struct {
	in    stage.Input
	steps []predict.Step
	train bool
	meta  *schema.RunMeta // nil when the run has no run_meta.json
	// detail is set when the run's step_detail.csv is attached to steps.
	detail bool
}

// padding is the shape padding the padded features use: given in params,
// else the training runs' engine settings (transformers records
// q_padding_interval_size and kv_padding_interval_size when it runs CUDA
// graphs), which must then agree.
func (p *FitParams) padding(cells []fitCell) (predict.Padding, error) {
	if p.QPadding != nil || p.KVPadding != nil {
		var pd predict.Padding
		if p.QPadding != nil {
			pd.Query = *p.QPadding
		}
		if p.KVPadding != nil {
			pd.KV = *p.KVPadding
		}
		return pd, nil
	}
	var pd predict.Padding
	first := true
	for _, c := range cells {
		if !c.train || c.meta == nil {
			continue
		}
		var got predict.Padding
		if !graphsOn(c.meta.Engine["cuda_graphs"]) {
			got = predict.Padding{}
		} else {
			if v, ok := c.meta.Engine["q_padding_interval_size"].(float64); ok {
				got.Query = int64(v)
			}
			if v, ok := c.meta.Engine["kv_padding_interval_size"].(float64); ok {
				got.KV = int64(v)
			}
		}
		if !first && got != pd {
			return pd, fmt.Errorf("training runs disagree on shape padding (%+v in %s, %+v before); set with.q_padding and with.kv_padding", got, c.in.Instance, pd)
		}
		pd, first = got, false
	}
	return pd, nil
}

// graphsOn reads run_meta's cuda_graphs, recorded as a bool or as a pair of
// bools (varlen, decode).
func graphsOn(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case []any:
		for _, e := range x {
			if b, _ := e.(bool); b {
				return true
			}
		}
	}
	return false
}

func (FitKind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decodeFitParams(spec.Params)
	if err != nil {
		return err
	}
	ins, err := stage.FindInputs(spec, fitRunsRole)
	if err != nil {
		return err
	}
	var cells []fitCell
	for _, in := range ins {
		path := filepath.Join(in.Dir, schema.StepMetricsFile)
		if !schema.Exists(path) {
			return fmt.Errorf("fit %s: input %s has no %s; fit needs real runs that record engine steps", spec.Instance, in.Instance, schema.StepMetricsFile)
		}
		rows, err := schema.ReadStepMetrics(path)
		if err != nil {
			return fmt.Errorf("fit %s: %w", spec.Instance, err)
		}
		c := fitCell{in: in, train: p.Selected(in.Matrix)}
		if m, err := schema.ReadRunMeta(filepath.Join(in.Dir, schema.RunMetaFile)); err == nil {
			c.meta = m
		}
		for _, r := range rows {
			c.steps = append(c.steps, predict.Step{StartNs: r.StartNs, EndNs: r.EndNs, PrefillTokens: r.NumPrefillTokens,
				DecodeTokens: r.NumDecodeTokens, Requests: r.NumRequests, PrefillRequests: r.NumPrefillRequests,
				DecodeRequests: r.NumDecodeRequests, ContextTokens: r.NumContextTokens})
		}
		if err := c.readDetail(); err != nil {
			return fmt.Errorf("fit %s: %w", spec.Instance, err)
		}
		cells = append(cells, c)
	}
	var runs [][]predict.Step
	var warm [][]predict.GraphKey
	var training []predict.TrainingCell
	pad, err := p.padding(cells)
	if err != nil {
		return fmt.Errorf("fit %s: %w", spec.Instance, err)
	}
	var matrices []map[string]any
	for _, c := range cells {
		matrices = append(matrices, c.in.Matrix)
		if !c.train {
			continue
		}
		runs = append(runs, c.steps)
		warm = append(warm, c.warmKeys())
		training = append(training, predict.TrainingCell{Instance: c.in.Instance, Matrix: c.in.Matrix, Steps: len(c.steps)})
	}
	if len(runs) == 0 {
		return fmt.Errorf("fit %s: with.train selects none of the %d input cells: %s; set with.train to values of the experiment's matrix",
			spec.Instance, len(cells), trainMiss(p.Train, matrices))
	}
	var m *predict.StepModel
	if g, ok := mechanicsInputs(cells, p); ok {
		m, err = predict.FitMechanics(runs, g, warm)
		if err == nil {
			m.Mechanics.WarmKeys = warm[0]
			m.Padding = pad
		}
	} else {
		m, err = predict.Fit(runs, p.Features, pad)
	}
	if err != nil {
		return fmt.Errorf("fit %s: %w", spec.Instance, err)
	}
	m.Training = training
	for _, c := range cells {
		if c.train && c.meta != nil {
			m.Engine = c.meta.Engine
			break
		}
	}
	if err := m.Write(filepath.Join(spec.OutDir, StepModelFile)); err != nil {
		return fmt.Errorf("fit %s: %w", spec.Instance, err)
	}
	if err := os.WriteFile(filepath.Join(spec.OutDir, FitReportFile), []byte(fitReport(m, cells)), 0o644); err != nil {
		return fmt.Errorf("fit %s: %w", spec.Instance, err)
	}
	if env.Log != nil {
		fmt.Fprintf(env.Log, "fitted %d coefficients on %d steps of %d runs: R² %.4f, MAPE %.2f%%\n",
			len(m.Coef), m.NumSteps, len(runs), m.R2, 100*m.Residual.MAPE)
	}
	return nil
}

// stepErrors is the mean and P90 absolute relative error of the model on
// one run's steps.
func stepErrors(m *predict.StepModel, steps []predict.Step) (mape, p90 float64) {
	var rel []float64
	for _, s := range steps {
		d := float64(s.EndNs - s.StartNs)
		if d <= 0 {
			continue
		}
		pr := float64(m.PredictStep(s))
		rel = append(rel, math.Abs(pr-d)/d)
	}
	if len(rel) == 0 {
		return 0, 0
	}
	slices.Sort(rel)
	for _, r := range rel {
		mape += r
	}
	return mape / float64(len(rel)), rel[int(0.9*float64(len(rel)-1))]
}

func fitReport(m *predict.StepModel, cells []fitCell) string {
	if m.Mechanics != nil {
		return mechanicsReport(m, cells)
	}
	var b strings.Builder
	b.WriteString("# Step-model fit\n\n")
	b.WriteString("Iteration wall time (ns) as a linear function of the batch composition, fitted by robust (Huber) least squares\n")
	b.WriteString("to the real engine's step_metrics.csv. The next iteration starts gap_ns after the previous one ends.\n\n")
	b.WriteString("| feature | coefficient (ns) |\n| --- | ---: |\n")
	for i, f := range m.Features {
		fmt.Fprintf(&b, "| %s | %.6g |\n", f, m.Coef[i])
	}
	if len(m.Dropped) > 0 {
		fmt.Fprintf(&b, "\nDropped (zero, or not separable from the features before them in these runs): %s\n", strings.Join(m.Dropped, ", "))
	}
	if len(m.Clamped) > 0 {
		fmt.Fprintf(&b, "\nHeld at zero (their least-squares cost came out negative): %s\n", strings.Join(m.Clamped, ", "))
	}
	fmt.Fprintf(&b, "\n- steps fitted: %d\n- R²: %.4f\n- residual mean %.0f ns, std %.0f ns\n", m.NumSteps, m.R2, m.Residual.MeanNs, m.Residual.StdNs)
	fmt.Fprintf(&b, "- |relative error| per step: mean %.2f%%, P50 %.2f%%, P90 %.2f%%, P99 %.2f%%\n",
		100*m.Residual.MAPE, 100*m.Residual.AbsRelP50, 100*m.Residual.AbsRelP90, 100*m.Residual.AbsRelP99)
	fmt.Fprintf(&b, "- gap between back-to-back steps: median %d ns, P90 %d ns (%d gaps)\n", m.Residual.GapMedianNs, m.Residual.GapP90Ns, m.Residual.GapsCounted)
	if m.Padding != (predict.Padding{}) {
		fmt.Fprintf(&b, "- shape padding (CUDA graphs): query to a multiple of %d, KV to a multiple of %d tokens\n", m.Padding.Query, m.Padding.KV)
		fmt.Fprintf(&b, "- graph capture on a new padded shape: +%.1f ms (median over %d captures); %d shapes already captured by the warm-up\n",
			float64(m.CaptureNs)/1e6, m.Captures, len(m.WarmShapes))
		if n := len(m.CaptureRunNs); n > 1 {
			fmt.Fprintf(&b, "  - capture level per run (the run's median capture): %.1f to %.1f ms, median %.1f ms; within a run, captures are %.2fx to %.2fx their run's median (P5 to P95); a simulation draws one level per run\n",
				float64(m.CaptureRunNs[0])/1e6, float64(m.CaptureRunNs[n-1])/1e6, float64(m.CaptureRunNs[n/2])/1e6,
				m.CaptureRatio[1], m.CaptureRatio[len(m.CaptureRatio)-2])
		}
	}
	if m.StallFraction > 0 {
		q := m.StallExcessNs
		fmt.Fprintf(&b, "- host stalls (steps over 1.5x the law, left out of the fit): %.2f%% of steps, excess P50 %.1f ms, P90 %.1f ms, max %.1f ms\n",
			100*m.StallFraction, float64(q[len(q)/2])/1e6, float64(q[len(q)*9/10])/1e6, float64(q[len(q)-1])/1e6)
		for _, k := range []struct {
			name string
			st   *predict.Stalls
		}{{"steps with prefill tokens", m.PrefillStalls}, {"decode-only steps", m.DecodeStalls}} {
			if k.st == nil || len(k.st.ExcessNs) == 0 {
				continue
			}
			q := k.st.ExcessNs
			fmt.Fprintf(&b, "  - %s: %.2f%% of %d slow, excess P50 %.1f ms, P90 %.1f ms (a simulation draws stalls per kind of step)\n",
				k.name, 100*k.st.Fraction, k.st.Steps, float64(q[len(q)/2])/1e6, float64(q[len(q)*9/10])/1e6)
		}
	}
	cellTable(&b, m, cells)
	return b.String()
}

// cellTable is the per-cell step error of the model, training and held-out
// cells alike.
func cellTable(b *strings.Builder, m *predict.StepModel, cells []fitCell) {
	b.WriteString("\n")
	b.WriteString("| cell | role | steps | step MAPE | step P90 |rel err| |\n| --- | --- | ---: | ---: | ---: |\n")
	for _, c := range cells {
		role := "held out"
		if c.train {
			role = "train"
		}
		mape, p90 := stepErrors(m, c.steps)
		fmt.Fprintf(b, "| %s | %s | %d | %.2f%% | %.2f%% |\n", c.in.Instance, role, len(c.steps), 100*mape, 100*p90)
	}
}

func lawTable(b *strings.Builder, title string, l predict.Law, unit func(string) (float64, string)) {
	fmt.Fprintf(b, "\n**%s**\n\n| feature | cost |\n| --- | ---: |\n", title)
	for i, f := range l.Features {
		scale, u := unit(f)
		fmt.Fprintf(b, "| %s | %.4g %s |\n", f, l.Coef[i]*scale, u)
	}
}

func mechanicsReport(m *predict.StepModel, cells []fitCell) string {
	mc := m.Mechanics
	var b strings.Builder
	b.WriteString("# Step-model fit (engine mechanics)\n\n")
	b.WriteString("Each step of the real engine is host work, then either the replay of a CUDA graph (the replay call and the device\n")
	b.WriteString("time, a function of the padded shape) or, for a graph key the process has not captured, an eager forward (the\n")
	b.WriteString("graph's kernels, run once) and a capture. Each part is fitted on the part of the step_detail.csv timing it explains\n")
	b.WriteString("(non-negative Huber least squares). A simulation keeps the set of captured keys, starting from the bench's warm-up.\n\n")
	fmt.Fprintf(&b, "- graph key: query tokens padded to a multiple of %d (at most %d), cached KV tokens read padded to a multiple of %d, the longest request's KV length padded to a power of two of at least %d (both at most %d)",
		mc.Graphs.QPadding, mc.Graphs.MaxBatchTokens, mc.Graphs.KVPadding, mc.Graphs.SeqlenMin, mc.Graphs.CacheTokens)
	if mc.Graphs.Capacity > 0 {
		fmt.Fprintf(&b, "; at most %d graphs kept (least recently used evicted)\n", mc.Graphs.Capacity)
	} else {
		b.WriteString("; every captured graph is kept\n")
	}
	fmt.Fprintf(&b, "- fitted on %d replayed steps and %d captures; gap between back-to-back steps: median %d ns\n", mc.Steps, mc.Captures, m.InterStepGapNs)
	ms := func(f string) (float64, string) {
		switch f {
		case predict.FeatIntercept, predict.FeatFreshShape, predict.FeatRequests, predict.FeatPrefillRequests:
			return 1e-6, "ms"
		case predict.FeatPaddedMask:
			return 1, "ns per padded query × KV pair"
		case predict.FeatWaveKV:
			return 1e-3, "µs per padded KV token per wave"
		case predict.FeatDeviceTime:
			return 1, "× the device law's time for the key (the eager forward)"
		}
		return 1e-3, "µs per token"
	}
	lawTable(&b, "Host (ns per step, fitted on step time minus the compute phase of replayed steps)", mc.Host, ms)
	lawTable(&b, "Device (the replayed graph: the replay call and the device-to-host wait, a function of the padded shape)", mc.Device, ms)
	if mc.Wave > 0 {
		fmt.Fprintf(&b, "\nThe attention kernel's time steps with each wave of %d padded query tokens (chosen on the training steps: the width that fits them best); padded_kv_total is the padded KV read plus the padded query.\n", mc.Wave)
	} else if slices.Contains(mc.Device.Features, predict.FeatWaveKV) {
		b.WriteString("\nNo training step crossed an attention wave boundary: the law has no wave term and extrapolates none.\n")
	}
	lawTable(&b, "Capture (step time minus host time of steps that captured: the eager forward plus the capture's overhead)", mc.Capture, ms)
	b.WriteString("\n| law | |relative error| P50 | P90 | P99 |\n| --- | ---: | ---: | ---: |\n")
	for _, r := range []struct {
		name string
		e    predict.ResidualStats
	}{{"host", mc.HostError}, {"device", mc.DeviceError}, {"capture", mc.CaptureError}, {"whole replayed step", m.Residual}} {
		fmt.Fprintf(&b, "| %s | %.2f%% | %.2f%% | %.2f%% |\n", r.name, 100*r.e.AbsRelP50, 100*r.e.AbsRelP90, 100*r.e.AbsRelP99)
	}
	if q := mc.CaptureRatio; len(q) > 2 {
		fmt.Fprintf(&b, "\nA capture's overhead over its law: P5 %.2fx, median %.2fx, P95 %.2fx; a simulation draws each capture's ratio (seeded).\n",
			q[1], q[len(q)/2], q[len(q)-2])
	}
	if st := mc.Stalls; st != nil && st.Fraction > 0 {
		fmt.Fprintf(&b, "\nReplayed steps over 1.5x their law (stalls the shape does not explain): %.2f%% of %d.\n", 100*st.Fraction, st.Steps)
	} else {
		b.WriteString("\nNo replayed step took more than 1.5x its law: the slow steps of the engine are its captures.\n")
	}
	if len(mc.WarmKeys) > 0 {
		var ks []string
		for _, k := range mc.WarmKeys {
			ks = append(ks, k.String())
		}
		fmt.Fprintf(&b, "\nGraphs cached when the first training run's replay started (the bench's warm-up): %s.\n", strings.Join(ks, ", "))
	}
	cellTable(&b, m, cells)
	return b.String()
}

func (FitKind) Validate(spec *stage.Spec) error {
	_, err := predict.ReadStepModel(filepath.Join(spec.OutDir, StepModelFile))
	return err
}
