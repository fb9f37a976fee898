package predict

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"
)

// FitMechanics fits the mechanics model (see Mechanics) to runs whose every
// step has a Detail (the real bench's step_detail.csv); g is the engine's
// graph keying, from its run_meta.json. Replayed steps fit the device law
// on their device wait and the host law on the rest; steps that captured
// fit the capture law on their excess over the host law.
//
// warm[i], when given, are the graphs run i's engine held when its replay
// started (the bench records them); without them, the engine's warmup()
// graph alone. They decide which captures were of a fresh tensor shape.
func FitMechanics(runs [][]Step, g GraphConfig, warm [][]GraphKey) (*StepModel, error) {
	type obs struct {
		x    mechX
		dur  float64
		dev  float64
		host float64
	}
	var hits, misses []obs
	for ri, r := range runs {
		cache := newGraphCache(0)
		cache.use(g.WarmupKey())
		if ri < len(warm) {
			for _, k := range warm[ri] {
				cache.use(k)
			}
		}
		for i, s := range r {
			if s.Detail == nil {
				return nil, fmt.Errorf("step model: run %d step %d has no step detail; the mechanics form needs step_detail.csv for every training run", ri+1, i)
			}
			sh := s.shape()
			k := s.Detail.Key
			if k == (GraphKey{}) {
				k = g.Key(sh)
			}
			dur := float64(effectiveNs(r, i))
			fresh := !cache.seenShape(k)
			cache.use(k)
			s.Detail.FreshShape = s.Detail.Hit == 0 && fresh
			o := obs{x: mechX{sh: sh, k: k, fresh: fresh}, dur: dur, dev: float64(s.Detail.DeviceNs), host: dur - float64(s.Detail.DeviceNs)}
			switch s.Detail.Hit {
			case 1:
				hits = append(hits, o)
			case 0:
				misses = append(misses, o)
			}
		}
	}
	if len(hits) < 2*len(HostFeatures) {
		return nil, fmt.Errorf("step model: %d replayed steps are too few to fit the host and device laws", len(hits))
	}
	design := func(set []obs, feats []string) [][]float64 {
		X := make([][]float64, len(set))
		for i, o := range set {
			row := make([]float64, len(feats))
			for j, f := range feats {
				row[j] = mechValue(f, o.x)
			}
			X[i] = row
		}
		return X
	}
	col := func(set []obs, f func(obs) float64) []float64 {
		y := make([]float64, len(set))
		for i, o := range set {
			y[i] = f(o)
		}
		return y
	}
	mc := &Mechanics{Graphs: g, Steps: len(hits), Captures: len(misses)}
	var err error
	if mc.Device, err = fitLaw(design(hits, DeviceFeatures), col(hits, func(o obs) float64 { return o.dev }), DeviceFeatures); err != nil {
		return nil, fmt.Errorf("step model: device law: %w", err)
	}
	if mc.Host, err = fitLaw(design(hits, HostFeatures), col(hits, func(o obs) float64 { return o.host }), HostFeatures); err != nil {
		return nil, fmt.Errorf("step model: host law: %w", err)
	}
	m := &StepModel{SchemaVersion: 3, Mechanics: mc}
	m.MinStepNs = math.MaxInt64
	var relHost, relDev, relTot, stallEx []float64
	for _, o := range hits {
		h, d := mc.Host.at(o.x), mc.Device.at(o.x)
		relHost = append(relHost, relErr(h, o.host))
		relDev = append(relDev, relErr(d, o.dev))
		relTot = append(relTot, relErr(h+d, o.dur))
		if o.dur > captureRatio*(h+d) {
			stallEx = append(stallEx, o.dur-(h+d))
		} else {
			m.MinStepNs = min(m.MinStepNs, int64(o.dur))
		}
	}
	mc.HostError, mc.DeviceError = relStats(relHost), relStats(relDev)
	m.Residual = relStats(relTot)
	mc.Stalls = newStalls(stallEx, len(hits))
	if len(misses) >= len(CaptureFeatures)+1 {
		ex := col(misses, func(o obs) float64 { return o.dur - mc.Host.at(o.x) })
		if mc.Capture, err = fitLaw(design(misses, CaptureFeatures), ex, CaptureFeatures); err != nil {
			return nil, fmt.Errorf("step model: capture law: %w", err)
		}
		var ratios, rel []float64
		for i, o := range misses {
			c := mc.Capture.at(o.x)
			if c > 0 {
				ratios = append(ratios, ex[i]/c)
			}
			rel = append(rel, relErr(c, ex[i]))
		}
		sort.Float64s(ratios)
		for i := 0; i <= stallQuantiles && len(ratios) > 0; i++ {
			mc.CaptureRatio = append(mc.CaptureRatio, quantile(ratios, float64(i)/stallQuantiles))
		}
		mc.CaptureError = relStats(rel)
	} else {
		// No capture seen in training (every shape warm): a capture costs
		// an eager forward and a capture, about two replays' device time.
		mc.Capture = Law{Features: slices.Clone(DeviceFeatures), Coef: scaled(mc.Device.Coef, 2)}
		mc.CaptureRatio = nil
	}
	m.NumSteps = len(hits) + len(misses)
	set := make([]sample, 0, len(hits))
	for _, o := range hits {
		set = append(set, sample{shape: o.x.sh, dur: int64(o.dur)})
	}
	m.gaps(runs, set)
	return m, nil
}

func scaled(c []float64, f float64) []float64 {
	out := make([]float64, len(c))
	for i, x := range c {
		out[i] = x * f
	}
	return out
}

func relErr(pred, actual float64) float64 {
	if actual <= 0 {
		return 0
	}
	return math.Abs(pred-actual) / actual
}

// relStats summarises |relative errors|.
func relStats(rel []float64) ResidualStats {
	s := slices.Clone(rel)
	sort.Float64s(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	return ResidualStats{MAPE: sum / float64(max(1, len(s))), AbsRelP50: quantile(s, 0.5), AbsRelP90: quantile(s, 0.9), AbsRelP99: quantile(s, 0.99)}
}

// fitLaw is a non-negative Huber fit of y on the columns of X: every
// feature is a cost, a negative one only trades off against a collinear
// neighbour and extrapolates badly, so the most negative is held at zero
// and the rest refitted until none is negative; within that, Huber weights
// on relative residuals keep a few odd steps from dragging the law.
// Columns that are zero throughout, or not separable from the ones before
// them, get a zero coefficient.
func fitLaw(X [][]float64, y []float64, feats []string) (Law, error) {
	law := Law{Features: slices.Clone(feats), Coef: make([]float64, len(feats))}
	if len(X) == 0 {
		return law, errors.New("no steps")
	}
	var active []int
	for j := range feats {
		nonzero := false
		for _, row := range X {
			nonzero = nonzero || row[j] != 0
		}
		if !nonzero {
			continue
		}
		if c := condOf(X, append(slices.Clone(active), j)); c > maxCondition {
			continue
		}
		active = append(active, j)
	}
	for {
		coef, err := huberLS(X, y, active)
		if err != nil {
			return law, err
		}
		worst := -1
		for _, j := range active {
			if coef[j] < 0 && (worst < 0 || coef[j] < coef[worst]) {
				worst = j
			}
		}
		if worst < 0 || len(active) == 1 {
			law.Coef = coef
			for j := range law.Coef {
				law.Coef[j] = math.Max(law.Coef[j], 0)
			}
			return law, nil
		}
		active = slices.DeleteFunc(active, func(j int) bool { return j == worst })
	}
}

func scaledDesign(X [][]float64, cols []int, w []float64) (*mat.Dense, []float64) {
	n, k := len(X), len(cols)
	D := mat.NewDense(n, k, nil)
	scale := make([]float64, k)
	for jj, j := range cols {
		m := 0.0
		for i := range X {
			m = math.Max(m, math.Abs(X[i][j]))
		}
		if m == 0 {
			m = 1
		}
		scale[jj] = m
		for i := range X {
			v := X[i][j] / m
			if w != nil {
				v *= math.Sqrt(w[i])
			}
			D.Set(i, jj, v)
		}
	}
	return D, scale
}

func condOf(X [][]float64, cols []int) float64 {
	if len(X) < len(cols) {
		return math.Inf(1)
	}
	D, _ := scaledDesign(X, cols, nil)
	var qr mat.QR
	qr.Factorize(D)
	return qr.Cond()
}

func weightedLS(X [][]float64, y []float64, cols []int, w []float64) ([]float64, error) {
	n := len(X)
	if n < len(cols)+1 {
		return nil, fmt.Errorf("%d steps are too few to fit %d coefficients", n, len(cols))
	}
	D, scale := scaledDesign(X, cols, w)
	yv := mat.NewVecDense(n, nil)
	for i := range y {
		v := y[i]
		if w != nil {
			v *= math.Sqrt(w[i])
		}
		yv.SetVec(i, v)
	}
	var qr mat.QR
	qr.Factorize(D)
	if c := qr.Cond(); c > maxCondition || math.IsInf(c, 0) || math.IsNaN(c) {
		return nil, fmt.Errorf("features are (nearly) collinear in the training steps (condition number %.3g)", c)
	}
	var beta mat.VecDense
	if err := qr.SolveVecTo(&beta, false, yv); err != nil {
		return nil, fmt.Errorf("least squares failed: %w", err)
	}
	coef := make([]float64, len(X[0]))
	for jj, j := range cols {
		coef[j] = beta.AtVec(jj) / scale[jj]
	}
	return coef, nil
}

// huberLS is the Huber M-estimate by iteratively reweighted least squares
// on relative residuals (see solveHuber).
func huberLS(X [][]float64, y []float64, cols []int) ([]float64, error) {
	coef, err := weightedLS(X, y, cols, nil)
	if err != nil {
		return nil, err
	}
	n := len(X)
	w := make([]float64, n)
	res := make([]float64, n)
	abs := make([]float64, n)
	for it := 0; it < 20; it++ {
		for i := range X {
			var p float64
			for _, j := range cols {
				p += coef[j] * X[i][j]
			}
			res[i] = (y[i] - p) / math.Max(math.Abs(p), 1)
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
		next, err := weightedLS(X, y, cols, w)
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
