package predict

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// busyGapLimit separates back-to-back steps from idle periods: a gap longer
// than this many times the median step is the engine waiting for work.
const busyGapLimit = 2.0

// captureRatio marks a step whose padded shape is new in its run as one
// that captured a CUDA graph: it took this many times the model's time.
const captureRatio = 1.5

// sample is one training step reduced to what the fit needs.
type sample struct {
	shape sched.Shape
	dur   int64
	key   [2]int64 // padded (query, KV) shape
	first bool     // the first step of its run with this padded shape
	run   int      // index of its run
}

// Fit fits features to the steps of one or more runs (each slice is one run
// in step order) by least squares; pad is the engine's shape padding the
// padded features use. With padding (an engine running CUDA graphs) the
// first step of each new padded shape in a run is left out of the fit: it
// captures a graph and is slow; the median excess of those that were slow
// becomes CaptureNs, and the shapes whose first step was not slow (captured
// during the engine's warm-up) become WarmShapes.
func Fit(runs [][]Step, features []string, pad Padding) (*StepModel, error) {
	if len(features) == 0 {
		features = DefaultFeatures
	}
	for _, f := range features {
		if !slices.Contains(AllFeatures, f) {
			return nil, fmt.Errorf("unknown step-model feature %q; use some of %v", f, AllFeatures)
		}
	}
	graphs := pad.Query > 0 || pad.KV > 0
	var all []sample
	for ri, r := range runs {
		seen := map[[2]int64]bool{}
		for i, st := range r {
			sh := st.shape()
			key := pad.key(sh)
			all = append(all, sample{shape: sh, dur: effectiveNs(r, i), key: key, first: graphs && !seen[key], run: ri})
			seen[key] = true
		}
	}
	var fitSet []sample
	for _, sm := range all {
		if !sm.first {
			fitSet = append(fitSet, sm)
		}
	}
	if pad.Query > 0 && slices.Contains(features, FeatAttentionWaves) {
		w, err := chooseWave(fitSet, features, pad)
		if err != nil {
			return nil, err
		}
		pad.Wave = w
	}
	// A feature the training steps cannot separate from the ones before it
	// in the form (zero everywhere, like context_tokens from an engine that
	// does not record it; or, without runs that cross a padding boundary,
	// padded_kv_tokens constant beside the intercept) is dropped with a
	// zero coefficient rather than failing the fit or fitting noise.
	var used []int
	var dropped []string
	for j, f := range features {
		if !slices.ContainsFunc(fitSet, func(sm sample) bool { return pad.featureValue(f, sm.shape) != 0 }) {
			dropped = append(dropped, f)
			continue
		}
		if cond := conditionNumber(fitSet, features, append(slices.Clone(used), j), pad); cond > maxCondition {
			dropped = append(dropped, f)
			continue
		}
		used = append(used, j)
	}
	coef, clamped, err := solveNonNeg(fitSet, features, used, pad, solve)
	if err != nil {
		return nil, err
	}
	m := &StepModel{SchemaVersion: 2, Features: features, Coef: coef, Dropped: dropped, Padding: pad}
	defer func() { m.Clamped = clamped }()
	// Steps far slower than the law (the host stalling: Python, the
	// allocator, the replay thread) would drag the law up for every step;
	// fit without them and model them apart as occasional stalls.
	var core, slow []sample
	for _, sm := range fitSet {
		if float64(sm.dur) > captureRatio*m.raw(sm.shape) {
			slow = append(slow, sm)
		} else {
			core = append(core, sm)
		}
	}
	if len(core) > len(used) {
		// The law itself is fitted robustly (Huber weights, iteratively
		// reweighted): steps up to 1.5× the law that are slow for reasons
		// the features do not see (a slow-regime run, a short stall) pull
		// least squares up for every step; a Huber fit follows the bulk.
		if m.Coef, clamped, err = solveNonNeg(core, features, used, pad, solveHuber); err != nil {
			return nil, err
		}
		var excess, exPre, exDec []float64
		nPre, nDec := 0, 0
		core, slow = core[:0], slow[:0]
		for _, sm := range fitSet {
			pre := sm.shape.PrefillTokens > 0
			if pre {
				nPre++
			} else {
				nDec++
			}
			if p := m.raw(sm.shape); float64(sm.dur) > captureRatio*p {
				slow = append(slow, sm)
				excess = append(excess, float64(sm.dur)-p)
				if pre {
					exPre = append(exPre, float64(sm.dur)-p)
				} else {
					exDec = append(exDec, float64(sm.dur)-p)
				}
			} else {
				core = append(core, sm)
			}
		}
		if len(slow) > 0 {
			all := newStalls(excess, len(fitSet))
			m.StallFraction, m.StallExcessNs = all.Fraction, all.ExcessNs
			m.PrefillStalls, m.DecodeStalls = newStalls(exPre, nPre), newStalls(exDec, nDec)
		}
	}
	m.NumSteps = len(fitSet)
	m.MinStepNs = math.MaxInt64
	for _, sm := range core {
		m.MinStepNs = min(m.MinStepNs, sm.dur)
	}
	m.residuals(core)
	m.gaps(runs, fitSet)
	if graphs {
		m.captures(all)
	}
	return m, nil
}

// chooseWave picks the attention wave width (FeatAttentionWaves) that
// fits the training steps best: every multiple of the query padding below
// the largest padded query they hold, each fitted as the law is
// (non-negative Huber, on the design computed once per width) and scored
// by the mean |relative error| of the steps within 1.5x of it (the rest
// are captures and stalls). A width must beat one wave whatever the query
// (0) to be kept: training steps that never cross a boundary give no
// evidence of one.
func chooseWave(set []sample, features []string, pad Padding) (int64, error) {
	var maxQ int64
	y := make([]float64, len(set))
	for i, sm := range set {
		maxQ = max(maxQ, padUp(sm.shape.PrefillTokens+sm.shape.DecodeTokens, pad.Query))
		y[i] = float64(sm.dur)
	}
	X := make([][]float64, len(set))
	for i := range X {
		X[i] = make([]float64, len(features))
	}
	best, bestErr := int64(0), math.Inf(1)
	for w := int64(0); w < maxQ; w += pad.Query {
		p := pad
		p.Wave = w
		for i, sm := range set {
			for j, f := range features {
				X[i][j] = p.featureValue(f, sm.shape)
			}
		}
		law, err := fitLaw(X, y, features)
		if err != nil {
			return 0, err
		}
		var sum float64
		n := 0
		for i, row := range X {
			var pr float64
			for j, c := range law.Coef {
				pr += c * row[j]
			}
			if y[i] > 0 && y[i] <= captureRatio*pr {
				sum += math.Abs(pr-y[i]) / y[i]
				n++
			}
		}
		if n > 0 && sum/float64(n) < bestErr {
			best, bestErr = w, sum/float64(n)
		}
	}
	return best, nil
}

// maxCondition is the largest condition number of the (column-scaled)
// design matrix a fit accepts.
const maxCondition = 1e9

// conditionNumber of the column-scaled design matrix of the used features.
func conditionNumber(set []sample, features []string, used []int, pad Padding) float64 {
	if len(set) < len(used) {
		return math.Inf(1)
	}
	X := design(set, features, used, pad)
	var qr mat.QR
	qr.Factorize(X)
	return qr.Cond()
}

// design builds the column-scaled design matrix; it returns the scales too.
func designScaled(set []sample, features []string, used []int, pad Padding) (*mat.Dense, []float64) {
	n, k := len(set), len(used)
	X := mat.NewDense(n, k, nil)
	for i, sm := range set {
		for jj, j := range used {
			X.Set(i, jj, pad.featureValue(features[j], sm.shape))
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
	return X, scale
}

func design(set []sample, features []string, used []int, pad Padding) *mat.Dense {
	X, _ := designScaled(set, features, used, pad)
	return X
}

// minCapturesPerRun is how many captures a run needs for its median to
// count as a run level.
const minCapturesPerRun = 5

// stallQuantiles is how finely step_model.json records the stall excess
// distribution.
const stallQuantiles = 20

// solve is the least-squares fit of the used features on set.
func solve(set []sample, features []string, used []int, pad Padding) ([]float64, error) {
	return solveWeighted(set, features, used, pad, nil)
}

// solveWeighted is the weighted least-squares fit (w nil: unweighted).
func solveWeighted(set []sample, features []string, used []int, pad Padding, w []float64) ([]float64, error) {
	n, k := len(set), len(used)
	if n < k+1 {
		return nil, fmt.Errorf("step model: %d steps are too few to fit %d coefficients", n, k)
	}
	X, scale := designScaled(set, features, used, pad)
	y := mat.NewVecDense(n, nil)
	for i, sm := range set {
		y.SetVec(i, float64(sm.dur))
	}
	if w != nil {
		for i := 0; i < n; i++ {
			r := math.Sqrt(w[i])
			for j := 0; j < k; j++ {
				X.Set(i, j, X.At(i, j)*r)
			}
			y.SetVec(i, y.AtVec(i)*r)
		}
	}
	var qr mat.QR
	qr.Factorize(X)
	if c := qr.Cond(); c > maxCondition || math.IsInf(c, 0) || math.IsNaN(c) {
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
	return coef, nil
}

// solveNonNeg fits with every coefficient non-negative: each feature is a
// cost (CPU per step or per request, GPU per token or per attention pair),
// and a negative one only trades off against a collinear neighbour. With
// the KV padding of 16384 tokens nearly every prefill step has the same
// padded KV, so the per-query-token cost and the query × KV cost are told
// apart by a few dozen heavy-load steps; the least-squares split between
// them swings from run to run (−12 µs per query token against 1.13 ns per
// pair on one sweep, +4 µs against 0.47 ns on the other) and extrapolates
// to the 32768/49152-token shapes of saturation by ±50%. The most negative
// coefficient is held at zero and the rest refitted until none is
// negative (an active-set descent; the exact NNLS optimum can differ when
// a held feature would come back positive, which the features here do
// not do).
func solveNonNeg(set []sample, features []string, used []int, pad Padding,
	fit func([]sample, []string, []int, Padding) ([]float64, error)) ([]float64, []string, error) {
	active := slices.Clone(used)
	var clamped []string
	for {
		coef, err := fit(set, features, active, pad)
		if err != nil {
			return nil, nil, err
		}
		worst := -1
		for _, j := range active {
			if coef[j] < 0 && (worst < 0 || coef[j] < coef[worst]) {
				worst = j
			}
		}
		if worst < 0 || len(active) == 1 {
			return coef, clamped, nil
		}
		active = slices.DeleteFunc(active, func(j int) bool { return j == worst })
		clamped = append(clamped, features[worst])
	}
}

// huberK is the Huber threshold in robust standard deviations (95%
// efficiency under normal noise).
const huberK = 1.345

// solveHuber is the Huber M-estimate of the used features on set, by
// iteratively reweighted least squares from the least-squares fit, on
// residuals relative to the prediction; the residual scale is the
// normalised median absolute relative residual.
func solveHuber(set []sample, features []string, used []int, pad Padding) ([]float64, error) {
	coef, err := solve(set, features, used, pad)
	if err != nil {
		return nil, err
	}
	resid := func(i int, coef []float64) float64 {
		var p float64
		for _, j := range used {
			p += coef[j] * pad.featureValue(features[j], set[i].shape)
		}
		// Relative residuals: a step's noise grows with its length
		// (prefill steps vary by tens of percent, decode steps by a
		// few), so absolute residuals would down-weight every prefill.
		return (float64(set[i].dur) - p) / math.Max(p, 1)
	}
	return huberReweight(len(set), coef, resid, func(w []float64) ([]float64, error) {
		return solveWeighted(set, features, used, pad, w)
	})
}

// huberReweight is the iteration of a Huber M-estimate from the
// least-squares coef: resid gives observation i's relative residual under
// coef, solve the weighted least-squares fit for weights w; the residual
// scale is the normalised median absolute residual. At most 20 rounds,
// fewer once the coefficients move by less than a millionth.
func huberReweight(n int, coef []float64, resid func(i int, coef []float64) float64, solve func(w []float64) ([]float64, error)) ([]float64, error) {
	w := make([]float64, n)
	res := make([]float64, n)
	abs := make([]float64, n)
	for it := 0; it < 20; it++ {
		for i := range res {
			res[i] = resid(i, coef)
			abs[i] = math.Abs(res[i])
		}
		sort.Float64s(abs)
		scale := 1.4826 * quantile(abs, 0.5)
		if scale <= 0 {
			return coef, nil
		}
		for i := range w {
			w[i] = 1
			if a := math.Abs(res[i]); a > huberK*scale {
				w[i] = huberK * scale / a
			}
		}
		next, err := solve(w)
		if err != nil {
			return nil, err
		}
		var change, size float64
		for j := range next {
			change += math.Abs(next[j] - coef[j])
			size += math.Abs(coef[j])
		}
		coef = next
		if change <= 1e-6*size {
			break
		}
	}
	return coef, nil
}

// residuals fills R² and the residual statistics on the fitted steps.
func (m *StepModel) residuals(set []sample) {
	var mean float64
	for _, sm := range set {
		mean += float64(sm.dur)
	}
	mean /= float64(len(set))
	var ssRes, ssTot, sum float64
	var rel, res []float64
	for _, sm := range set {
		d := float64(sm.dur)
		e := d - m.raw(sm.shape)
		res = append(res, e)
		sum += e
		ssRes += e * e
		ssTot += (d - mean) * (d - mean)
		if d > 0 {
			rel = append(rel, math.Abs(e)/d)
		}
	}
	if ssTot > 0 {
		m.R2 = 1 - ssRes/ssTot
	}
	rm := sum / float64(len(set))
	var v float64
	for _, e := range res {
		v += (e - rm) * (e - rm)
	}
	sort.Float64s(rel)
	var mape float64
	for _, x := range rel {
		mape += x
	}
	m.Residual = ResidualStats{MeanNs: rm, StdNs: math.Sqrt(v / float64(len(set))),
		MAPE: mape / float64(max(1, len(rel))), AbsRelP50: quantile(rel, 0.5), AbsRelP90: quantile(rel, 0.9), AbsRelP99: quantile(rel, 0.99)}
}

// gaps measures the time between back-to-back steps.
func (m *StepModel) gaps(runs [][]Step, set []sample) {
	durs := make([]float64, len(set))
	for i, sm := range set {
		durs[i] = float64(sm.dur)
	}
	sort.Float64s(durs)
	medStep := quantile(durs, 0.5)
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
}

// captures estimates the cost of a CUDA graph capture and the shapes the
// engine's warm-up had already captured.
func (m *StepModel) captures(all []sample) {
	var excess []float64
	perRun := map[int][]float64{}
	captured := map[[2]int64]bool{}
	warm := map[[2]int64]bool{}
	for _, sm := range all {
		if !sm.first {
			continue
		}
		pred := m.raw(sm.shape)
		if float64(sm.dur) > captureRatio*pred {
			excess = append(excess, float64(sm.dur)-pred)
			perRun[sm.run] = append(perRun[sm.run], float64(sm.dur)-pred)
			captured[sm.key] = true
		} else {
			warm[sm.key] = true
		}
	}
	sort.Float64s(excess)
	// The capture cost is mostly a property of the run (the engine
	// process and machine), not of the capture: on the recorded H100
	// sweeps the median capture of a run ranged from 79 to 159 ms while
	// captures within a run mostly stayed within ±30% of their run's
	// median. Split it into the run level and the ratio to it.
	var levels, ratios []float64
	for ri := 0; ri < len(all); ri++ {
		ex := perRun[ri]
		if len(ex) < minCapturesPerRun {
			continue
		}
		sort.Float64s(ex)
		med := quantile(ex, 0.5)
		levels = append(levels, med)
		for _, e := range ex {
			ratios = append(ratios, e/med)
		}
	}
	if len(levels) >= 2 {
		sort.Float64s(levels)
		sort.Float64s(ratios)
		m.CaptureRunNs, m.CaptureRatio = nil, nil
		for i := 0; i <= stallQuantiles; i++ {
			q := float64(i) / stallQuantiles
			m.CaptureRunNs = append(m.CaptureRunNs, int64(math.Round(quantile(levels, q))))
			m.CaptureRatio = append(m.CaptureRatio, quantile(ratios, q))
		}
	}
	m.CaptureNs = int64(math.Round(quantile(excess, 0.5)))
	m.Captures = len(excess)
	if len(excess) > 0 {
		m.CaptureExcessNs = nil
		for i := 0; i <= stallQuantiles; i++ {
			m.CaptureExcessNs = append(m.CaptureExcessNs, int64(math.Round(quantile(excess, float64(i)/stallQuantiles))))
		}
	}
	for k := range warm {
		if !captured[k] {
			m.WarmShapes = append(m.WarmShapes, k)
		}
	}
	slices.SortFunc(m.WarmShapes, func(a, b [2]int64) int {
		if a[0] != b[0] {
			return int(a[0] - b[0])
		}
		return int(a[1] - b[1])
	})
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
