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
// on their compute phase (the replay call and the device wait) and the host
// law on the rest; steps that captured fit the capture law on their excess
// over the host law and the eager forward's device time.
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
			dev := float64(s.Detail.ComputeNs)
			if dev <= 0 {
				dev = float64(s.Detail.DeviceNs)
			}
			o := obs{x: mechX{sh: sh, k: k, fresh: fresh}, dur: dur, dev: dev, host: dur - dev}
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
	devY := col(hits, func(o obs) float64 { return o.dev })
	if mc.Device, mc.Wave, err = fitDevice(func(wave int64) [][]float64 {
		for i := range hits {
			hits[i].x.wave = wave
		}
		return design(hits, DeviceFeatures)
	}, devY, g); err != nil {
		return nil, fmt.Errorf("step model: device law: %w", err)
	}
	for i := range hits {
		hits[i].x.wave = mc.Wave
	}
	for i := range misses {
		misses[i].x.wave = mc.Wave
	}
	if mc.Host, err = fitLaw(design(hits, HostFeatures), col(hits, func(o obs) float64 { return o.host }), HostFeatures); err != nil {
		return nil, fmt.Errorf("step model: host law: %w", err)
	}
	m := &StepModel{SchemaVersion: MechanicsVersion, Mechanics: mc}
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
	// A capture runs the graph's kernels once, eagerly, then records them:
	// its cost is the device law's time for its key (coefficient 1, from
	// the code, not fitted) plus the capture's own overhead, which is
	// fitted on what is left of the step after the host law.
	overheadFeats := CaptureFeatures[1:]
	if len(misses) >= len(overheadFeats)+1 {
		ex := make([]float64, len(misses))
		for i, o := range misses {
			ex[i] = o.dur - mc.Host.at(o.x) - mc.Device.at(o.x)
		}
		over, err := fitLaw(design(misses, overheadFeats), ex, overheadFeats)
		if err != nil {
			return nil, fmt.Errorf("step model: capture law: %w", err)
		}
		mc.Capture = Law{Features: slices.Clone(CaptureFeatures), Coef: append([]float64{1}, over.Coef...)}
		var ratios, rel []float64
		for i, o := range misses {
			c := over.at(o.x)
			if c > 0 {
				ratios = append(ratios, ex[i]/c)
			}
			forward := mc.Device.at(o.x)
			rel = append(rel, relErr(forward+c, forward+ex[i]))
		}
		sort.Float64s(ratios)
		for i := 0; i <= stallQuantiles && len(ratios) > 0; i++ {
			mc.CaptureRatio = append(mc.CaptureRatio, quantile(ratios, float64(i)/stallQuantiles))
		}
		mc.CaptureError = relStats(rel)
	} else {
		// No capture seen in training (every shape warm): a capture costs
		// an eager forward and a capture, about two replays' device time.
		mc.Capture = Law{Features: []string{FeatDeviceTime}, Coef: []float64{2}}
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

// fitDevice fits the device law for each candidate attention wave width
// (multiples of the query padding up to max_batch_tokens; design builds
// the training rows for one) and keeps the one whose law fits the
// training steps best (mean |relative error|; the narrowest on a tie).
// When the training steps never cross a wave boundary the wave term is
// not separable from the KV term, every width fits alike, and the law
// keeps no wave (Wave 0): it does not invent a boundary it never saw.
func fitDevice(design func(wave int64) [][]float64, y []float64, g GraphConfig) (Law, int64, error) {
	var maxQ int64
	for _, row := range design(0) {
		maxQ = max(maxQ, int64(row[slices.Index(DeviceFeatures, FeatPaddedQueryTokens)]))
	}
	step := g.QPadding
	if step <= 0 {
		step = 64
	}
	var best Law
	var bestWave int64
	bestErr := math.Inf(1)
	for wave := step; wave < maxQ; wave += step {
		X := design(wave)
		l, err := fitLaw(X, y, DeviceFeatures)
		if err != nil {
			return Law{}, 0, err
		}
		if e := meanRelErr(l, X, y); e < bestErr {
			best, bestWave, bestErr = l, wave, e
		}
	}
	// No wave: one wave whatever the query.
	X := design(0)
	l, err := fitLaw(X, y, DeviceFeatures)
	if err != nil {
		return Law{}, 0, err
	}
	if e := meanRelErr(l, X, y); e <= bestErr {
		return l, 0, nil
	}
	return best, bestWave, nil
}

func meanRelErr(l Law, X [][]float64, y []float64) float64 {
	var s float64
	for i, row := range X {
		var p float64
		for j, c := range l.Coef {
			p += c * row[j]
		}
		s += relErr(p, y[i])
	}
	return s / float64(max(1, len(y)))
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
	resid := func(i int, coef []float64) float64 {
		var p float64
		for _, j := range cols {
			p += coef[j] * X[i][j]
		}
		return (y[i] - p) / math.Max(math.Abs(p), 1)
	}
	return huberReweight(len(X), coef, resid, func(w []float64) ([]float64, error) {
		return weightedLS(X, y, cols, w)
	})
}
