package predict

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// Step-model features. The intercept is the engine's fixed CPU cost of a
// step (Python, kernel launches, synchronisation: a batch-of-one forward of
// Qwen3-0.6B on the transformers engine is ~27 ms of wall time for ~7 ms of
// kernels); requests is the per-request CPU cost of building inputs and
// handling outputs; the token terms are the GPU's share.
const (
	FeatIntercept       = "intercept"
	FeatPrefillTokens   = "prefill_tokens"
	FeatDecodeTokens    = "decode_tokens"
	FeatContextTokens   = "context_tokens"
	FeatRequests        = "requests"
	FeatPrefillRequests = "prefill_requests"
	FeatPrefillTokensSq = "prefill_tokens_sq"
	FeatTotalTokensSq   = "total_tokens_sq"
)

// AllFeatures lists the features a model may use.
var AllFeatures = []string{FeatIntercept, FeatPrefillTokens, FeatDecodeTokens, FeatContextTokens,
	FeatRequests, FeatPrefillRequests, FeatPrefillTokensSq, FeatTotalTokensSq}

// DefaultFeatures is the form used when none is asked for.
var DefaultFeatures = []string{FeatIntercept, FeatPrefillTokens, FeatDecodeTokens, FeatContextTokens,
	FeatRequests, FeatPrefillTokensSq}

// Step is one iteration as step_metrics.csv records it.
type Step struct {
	StartNs, EndNs                  int64
	PrefillTokens, DecodeTokens     int64
	Requests                        int64
	PrefillRequests, DecodeRequests int64
	ContextTokens                   int64
}

func featureValue(name string, s sched.Shape) float64 {
	switch name {
	case FeatIntercept:
		return 1
	case FeatPrefillTokens:
		return float64(s.PrefillTokens)
	case FeatDecodeTokens:
		return float64(s.DecodeTokens)
	case FeatContextTokens:
		return float64(s.ContextTokens)
	case FeatRequests:
		return float64(s.Requests)
	case FeatPrefillRequests:
		return float64(s.PrefillRequests)
	case FeatPrefillTokensSq:
		// step_metrics only has the sum of prefill tokens, so the square of
		// the sum (not the sum of squares) is what can be fitted.
		return float64(s.PrefillTokens) * float64(s.PrefillTokens)
	case FeatTotalTokensSq:
		t := float64(s.PrefillTokens + s.DecodeTokens)
		return t * t
	}
	panic("predict: unknown feature " + name)
}

func (s Step) shape() sched.Shape {
	return sched.Shape{Requests: s.Requests, PrefillRequests: s.PrefillRequests, DecodeRequests: s.DecodeRequests,
		PrefillTokens: s.PrefillTokens, DecodeTokens: s.DecodeTokens, ContextTokens: s.ContextTokens}
}

// StepModel is a fitted linear model of iteration wall time, persisted as
// step_model.json.
type StepModel struct {
	SchemaVersion int       `json:"schema_version"`
	Features      []string  `json:"features"`
	Coef          []float64 `json:"coefficients_ns"`
	// GapNs is the median time from one step's end to the next step's start
	// over back-to-back steps.
	InterStepGapNs int64          `json:"gap_ns"`
	R2             float64        `json:"r2"`
	Residual       ResidualStats  `json:"residual"`
	NumSteps       int            `json:"num_steps"`
	Training       []TrainingCell `json:"training_cells"`
	// MinStepNs floors predictions: a linear model can go below any step
	// the engine ever took for shapes outside the training range.
	MinStepNs int64 `json:"min_step_ns"`
	// Dropped lists features that were zero on every training step.
	Dropped []string `json:"dropped_features,omitempty"`
}

// ResidualStats summarise how well the model fits its training steps.
type ResidualStats struct {
	MeanNs      float64 `json:"mean_ns"`
	StdNs       float64 `json:"std_ns"`
	MAPE        float64 `json:"mape"`
	AbsRelP50   float64 `json:"abs_rel_p50"`
	AbsRelP90   float64 `json:"abs_rel_p90"`
	AbsRelP99   float64 `json:"abs_rel_p99"`
	GapMedianNs int64   `json:"gap_median_ns"`
	GapP90Ns    int64   `json:"gap_p90_ns"`
	GapsCounted int     `json:"gaps_counted"`
}

// TrainingCell names one real run the model was fitted on.
type TrainingCell struct {
	Instance string         `json:"instance"`
	Matrix   map[string]any `json:"matrix,omitempty"`
	Dir      string         `json:"dir,omitempty"`
	Steps    int            `json:"steps"`
}

// busyGapLimit separates back-to-back steps from idle periods: a gap longer
// than this many times the median step is the engine waiting for work.
const busyGapLimit = 2.0

// Fit fits features to the steps of one or more runs (each slice is one run
// in step order) by least squares.
func Fit(runs [][]Step, features []string) (*StepModel, error) {
	if len(features) == 0 {
		features = DefaultFeatures
	}
	for _, f := range features {
		ok := false
		for _, a := range AllFeatures {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("unknown step-model feature %q; use some of %v", f, AllFeatures)
		}
	}
	var n int
	for _, r := range runs {
		n += len(r)
	}
	// A feature that is zero on every training step (context_tokens from
	// an engine that does not record it) cannot be fitted; it is dropped
	// with a zero coefficient rather than failing the fit.
	var used []int
	var dropped []string
	for j, f := range features {
		nonzero := false
		for _, r := range runs {
			for _, s := range r {
				if featureValue(f, s.shape()) != 0 {
					nonzero = true
					break
				}
			}
		}
		if nonzero {
			used = append(used, j)
		} else {
			dropped = append(dropped, f)
		}
	}
	k := len(used)
	if n < k+1 {
		return nil, fmt.Errorf("step model: %d steps are too few to fit %d coefficients", n, k)
	}
	X := mat.NewDense(n, k, nil)
	y := mat.NewVecDense(n, nil)
	var durs []float64
	row := 0
	minStep := int64(math.MaxInt64)
	for _, r := range runs {
		for i, s := range r {
			sh := s.shape()
			for jj, j := range used {
				X.Set(row, jj, featureValue(features[j], sh))
			}
			d := effectiveNs(r, i)
			y.SetVec(row, float64(d))
			durs = append(durs, float64(d))
			minStep = min(minStep, d)
			row++
		}
	}
	// Scale columns so the squared terms do not swamp the solver.
	scale := make([]float64, k)
	for j := 0; j < k; j++ {
		m := 0.0
		for i := 0; i < n; i++ {
			m = math.Max(m, math.Abs(X.At(i, j)))
		}
		if m == 0 {
			m = 1
		}
		scale[j] = m
		for i := 0; i < n; i++ {
			X.Set(i, j, X.At(i, j)/m)
		}
	}
	var qr mat.QR
	qr.Factorize(X)
	if c := qr.Cond(); c > 1e9 || math.IsInf(c, 0) || math.IsNaN(c) {
		return nil, fmt.Errorf("step model: features %v are (nearly) collinear in the training steps (condition number %.3g); drop one of them from the form", features, c)
	}
	var beta mat.VecDense
	if err := qr.SolveVecTo(&beta, false, y); err != nil {
		return nil, fmt.Errorf("step model: least squares failed (are some features constant or collinear in the training runs? drop them from the form): %w", err)
	}
	coef := make([]float64, len(features))
	for jj, j := range used {
		coef[j] = beta.AtVec(jj) / scale[jj]
		if math.IsNaN(coef[j]) || math.IsInf(coef[j], 0) {
			return nil, errors.New("step model: singular fit; drop collinear features from the form")
		}
	}
	m := &StepModel{SchemaVersion: 1, Features: features, Coef: coef, NumSteps: n, MinStepNs: minStep, Dropped: dropped}
	// Goodness of fit on the training steps.
	var mean float64
	for _, d := range durs {
		mean += d
	}
	mean /= float64(n)
	var ssRes, ssTot, sumRes float64
	var rel []float64
	row = 0
	var res []float64
	for _, r := range runs {
		for _, s := range r {
			p := m.raw(s.shape())
			d := durs[row]
			e := d - p
			res = append(res, e)
			sumRes += e
			ssRes += e * e
			ssTot += (d - mean) * (d - mean)
			if d > 0 {
				rel = append(rel, math.Abs(e)/d)
			}
			row++
		}
	}
	if ssTot > 0 {
		m.R2 = 1 - ssRes/ssTot
	}
	rm := sumRes / float64(n)
	var v float64
	for _, e := range res {
		v += (e - rm) * (e - rm)
	}
	sort.Float64s(rel)
	var mape float64
	for _, x := range rel {
		mape += x
	}
	m.Residual = ResidualStats{MeanNs: rm, StdNs: math.Sqrt(v / float64(n)),
		MAPE: mape / float64(max(1, len(rel))), AbsRelP50: quantile(rel, 0.5), AbsRelP90: quantile(rel, 0.9), AbsRelP99: quantile(rel, 0.99)}
	// Gaps between back-to-back steps.
	sorted := append([]float64(nil), durs...)
	sort.Float64s(sorted)
	medStep := quantile(sorted, 0.5)
	var gaps []float64
	for _, r := range runs {
		for i := 1; i < len(r); i++ {
			g := float64(r[i].StartNs - r[i-1].EndNs)
			if g >= 0 && g <= busyGapLimit*medStep {
				gaps = append(gaps, g)
			}
		}
	}
	sort.Float64s(gaps)
	if len(gaps) > 0 {
		m.InterStepGapNs = int64(math.Round(quantile(gaps, 0.5)))
		m.Residual.GapMedianNs = m.InterStepGapNs
		m.Residual.GapP90Ns = int64(math.Round(quantile(gaps, 0.9)))
		m.Residual.GapsCounted = len(gaps)
	}
	return m, nil
}

// effectiveNs is how long step i of a run occupied the engine: from its
// start, or from the previous step's end when an engine that prepares the
// next batch while the GPU runs (asynchronous batching) started it earlier.
// For a synchronous engine it is end − start.
func effectiveNs(run []Step, i int) int64 {
	s := run[i]
	start := s.StartNs
	if i > 0 && run[i-1].EndNs > start {
		start = run[i-1].EndNs
	}
	return max(s.EndNs-start, 0)
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}

func (m *StepModel) raw(s sched.Shape) float64 {
	var t float64
	for j, f := range m.Features {
		t += m.Coef[j] * featureValue(f, s)
	}
	return t
}

// PredictStep is the model's time for a recorded step's composition.
func (m *StepModel) PredictStep(s Step) int64 { return m.PredictShape(s.shape()) }

// PredictShape is the model's step time for a batch shape.
func (m *StepModel) PredictShape(s sched.Shape) int64 {
	return max(int64(math.Round(m.raw(s))), m.MinStepNs)
}

func (m *StepModel) Name() string                { return "step-model" }
func (m *StepModel) GapNs() int64                { return m.InterStepGapNs }
func (m *StepModel) StepNs(b *sched.Batch) int64 { return m.PredictShape(b.Shape()) }
func (m *StepModel) Describe() map[string]any {
	return map[string]any{"name": m.Name(), "features": m.Features, "coefficients_ns": m.Coef,
		"gap_ns": m.InterStepGapNs, "r2": m.R2, "num_steps": m.NumSteps}
}

// Write saves the model as JSON.
func (m *StepModel) Write(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadStepModel loads a model written by Write.
func ReadStepModel(path string) (*StepModel, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("step model: %w", err)
	}
	var m StepModel
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("step model %s: %w", path, err)
	}
	if len(m.Features) == 0 || len(m.Features) != len(m.Coef) {
		return nil, fmt.Errorf("step model %s: features and coefficients_ns must be non-empty and of equal length; refit it with the fit stage", path)
	}
	for _, f := range m.Features {
		ok := false
		for _, a := range AllFeatures {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("step model %s: unknown feature %q", path, f)
		}
	}
	return &m, nil
}
