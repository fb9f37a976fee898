package report

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/gsim-dev/gsim/pkg/analysis"
	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// maxCDFPoints bounds each CDF line so a 2.5M-token ITL figure renders in
// milliseconds and stays a small PNG.
const maxCDFPoints = 2000

// logSpan is the max/min ratio (decades) above which an axis is drawn in
// log10: a 5 ms ITL body next to a 2 s queueing tail is unreadable linearly.
const logSpan = 100

// palette is Okabe–Ito (distinguishable with colour-blindness), reference first.
var palette = []drawing.Color{
	{R: 0, G: 0, B: 0, A: 255},
	{R: 0, G: 114, B: 178, A: 255},
	{R: 230, G: 159, B: 0, A: 255},
	{R: 0, G: 158, B: 115, A: 255},
	{R: 204, G: 121, B: 167, A: 255},
	{R: 213, G: 94, B: 0, A: 255},
	{R: 86, G: 180, B: 233, A: 255},
	{R: 240, G: 228, B: 66, A: 255},
}

// go-chart loads its default font lazily into a package variable without a
// lock, and compare stages render figures in parallel (within one stage and
// across stages of one gsim process), so the first load happens once here.
var (
	fontOnce sync.Once
	fontErr  error
)

func loadChartFont() error {
	fontOnce.Do(func() {
		if _, err := chart.GetDefaultFont(); err != nil {
			fontErr = fmt.Errorf("load chart font: %w", err)
		}
	})
	return fontErr
}

func seriesStyle(i int) chart.Style {
	return chart.Style{StrokeColor: palette[i%len(palette)], StrokeWidth: 2}
}

// axis maps data values onto a chart axis, linear or log10 with explicit
// decade ticks (go-chart's own log range places ticks inaccurately).
//
// go-chart only ever sees axis units, never raw data: a linear axis counts
// steps from its first tick (0..n) and a log axis counts decades. Both stay
// small, well-conditioned numbers whatever the data (values a float step
// apart, subnormals, 1e308), so no range go-chart computes can be zero,
// infinite or NaN, and every tick loop is bounded by an integer count.
type axis struct {
	log    bool
	lo, hi float64 // in axis units (what go-chart sees)
	// Linear axes: data value v sits at v/step - base.
	step, base float64
	// Categorical axes: data value v sits at rank[v].
	rank  map[float64]float64
	ticks []chart.Tick
}

// maxTicks bounds every axis's tick list; a log axis over more decades than
// this labels every k-th decade.
const maxTicks = 16

// minRelSpan is the smallest data range, relative to the values' magnitude,
// that a linear axis resolves; a narrower range is drawn as equal values.
const minRelSpan = 1e-6

// tinyMag is the magnitude below which values are treated as zero: steps
// that small would be subnormal and lose their precision.
const tinyMag = 1e-290

func (a axis) pos(v float64) float64 {
	if a.rank != nil {
		return a.rank[v]
	}
	if !a.log {
		return v/a.step - a.base
	}
	if v <= math.Pow(10, a.lo) {
		return a.lo
	}
	return math.Log10(v)
}

// noData stands in for the series of a figure whose runs all have empty
// samples (every request failed, or all had one output token): the figure
// still renders, and its legend says why it is blank.
func noData() chart.Series {
	return chart.ContinuousSeries{Name: "no data in any run", XValues: []float64{0, 1}, YValues: []float64{0, 0},
		Style: chart.Style{StrokeColor: drawing.ColorTransparent, StrokeWidth: 1}}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// newAxis picks the scale for values in [lo, hi] (data units). A
// non-finite bound is replaced by the other (by 0 and 1 if both are);
// callers leave non-finite samples out first.
func newAxis(lo, hi float64, fromZero bool) axis {
	switch {
	case !finite(lo) && !finite(hi):
		lo, hi = 0, 1
	case !finite(lo):
		lo = hi
	case !finite(hi):
		hi = lo
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	if lo > 0 && hi/lo > logSpan {
		return logAxis(lo, hi)
	}
	if fromZero {
		// Latency-vs-load axes start at 0 so relative gaps read right.
		lo = min(lo, 0)
	}
	return linearAxis(lo, hi)
}

func logAxis(lo, hi float64) axis {
	a := axis{log: true, lo: math.Floor(math.Log10(lo)), hi: math.Ceil(math.Log10(hi))}
	every := math.Ceil((a.hi - a.lo + 1) / maxTicks)
	for k := 0; a.lo+float64(k) <= a.hi; k++ {
		d := a.lo + float64(k)
		if math.Mod(float64(k), every) == 0 || d == a.hi {
			a.ticks = append(a.ticks, chart.Tick{Value: d, Label: decadeLabel(d)})
		}
	}
	return a
}

func decadeLabel(d float64) string {
	if d >= -300 && d <= 300 {
		return strconv.FormatFloat(math.Pow(10, d), 'g', 6, 64)
	}
	return fmt.Sprintf("1e%+d", int(d))
}

func linearAxis(lo, hi float64) axis {
	mag := max(math.Abs(lo), math.Abs(hi))
	// Halves, so that hi-lo cannot overflow.
	if hi/2-lo/2 <= mag*minRelSpan/2 || mag < tinyMag {
		// Equal values (or equal to within float noise): centre them on
		// an axis a tenth of their magnitude either side, or ±1 around 0.
		c := lo/2 + hi/2
		w := math.Abs(c) / 10
		if w < tinyMag {
			c, w = 0, 1
		}
		lo, hi = max(c-w, -math.MaxFloat64), min(c+w, math.MaxFloat64)
	}
	step := niceStep(hi/6 - lo/6)
	nlo, nhi := math.Floor(lo/step), math.Ceil(hi/step)
	n := nhi - nlo
	if !finite(n) || n < 1 || n > maxTicks {
		// Unreachable for finite input (the range is at least minRelSpan of
		// its magnitude and step at least a sixth of it); kept so no input
		// can make the tick loop below unbounded.
		n, nlo, step = 2, -1, max(mag, 1)
	}
	a := axis{lo: 0, hi: n, step: step, base: nlo}
	vmax := max(math.Abs(nlo*step), math.Abs(nhi*step))
	digits := min(max(6, int(math.Ceil(math.Log10(vmax/step)))+2), 17)
	for k := 0; k <= int(n); k++ {
		v := (nlo + float64(k)) * step
		label := ""
		if finite(v) {
			label = strconv.FormatFloat(v, 'g', digits, 64)
		}
		a.ticks = append(a.ticks, chart.Tick{Value: float64(k), Label: label})
	}
	return a
}

// niceStep returns the smallest of 1, 2, 2.5, 5 times a power of ten that is
// at least raw; 1 for a raw step that is not positive and finite.
func niceStep(raw float64) float64 {
	if !(raw > 0) || !finite(raw) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	if !(p > 0) || !finite(p) {
		return raw
	}
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func formatNum(v float64) string {
	if v == 0 {
		return "0"
	}
	// Rounding to a millionth hides float noise (0.1+0.2); past 1e15 there
	// is none to hide at six digits, and v*1e6 could overflow.
	if math.Abs(v) < 1e15 {
		v = math.Round(v*1e6) / 1e6
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func (a axis) label(name, unit string) string {
	if unit == "" {
		return name
	}
	if a.log {
		return fmt.Sprintf("%s (%s, log scale)", name, unit)
	}
	return fmt.Sprintf("%s (%s)", name, unit)
}

// CDFLine is one run's sample on a CDF figure.
type CDFLine struct {
	Label  string
	Sorted []float64
	// N is the sample's size when Sorted stands for a larger sample (a
	// sketch's quantiles); 0 means len(Sorted).
	N int
}

// cdfSketchPoints is how many quantiles of a sketched sample draw its CDF.
const cdfSketchPoints = 4096

// WriteCDF renders the empirical CDFs of lines, overlaid, as a PNG. NaN and
// infinite values are left out, and the line's legend says how many.
func WriteCDF(w io.Writer, title string, m analysis.MetricInfo, lines []CDFLine) error {
	lines, dropped := finiteLines(lines)
	lo, hi := math.Inf(1), math.Inf(-1)
	posLo := math.Inf(1)
	for _, l := range lines {
		if len(l.Sorted) == 0 {
			continue
		}
		lo, hi = min(lo, l.Sorted[0]), max(hi, l.Sorted[len(l.Sorted)-1])
		for _, v := range l.Sorted {
			if v > 0 {
				posLo = min(posLo, v)
				break
			}
		}
	}
	// Zero gaps (two tokens in one step) are real; a log axis pins them at
	// its left edge rather than dropping them.
	scaleLo := lo
	if lo <= 0 && posLo < math.Inf(1) && hi/posLo > logSpan {
		scaleLo = posLo
	}
	ax := newAxis(scaleLo, hi, false)
	var series []chart.Series
	drawn := 0
	for i, l := range lines {
		if len(l.Sorted) == 0 {
			if dropped[i] > 0 {
				series = append(series, legendOnly(fmt.Sprintf("%s (no finite values, %d left out)", l.Label, dropped[i]), ax.lo, 0))
			}
			continue
		}
		xs, ys := analysis.ECDFSteps(l.Sorted, maxCDFPoints)
		for k := range xs {
			xs[k] = ax.pos(xs[k])
		}
		name := fmt.Sprintf("%s (n=%d)", l.Label, cmp.Or(l.N, len(l.Sorted)))
		if dropped[i] > 0 {
			name = fmt.Sprintf("%s (n=%d, %d non-finite left out)", l.Label, cmp.Or(l.N, len(l.Sorted)), dropped[i])
		}
		series = append(series, chart.ContinuousSeries{Name: name, XValues: xs, YValues: ys, Style: seriesStyle(i)})
		drawn++
	}
	if drawn == 0 {
		series = append(series, noData())
		ax = newAxis(0, 1, false)
	}
	yTicks := make([]chart.Tick, 0, 11)
	for k := 0; k <= 10; k++ {
		v := float64(k) / 10
		yTicks = append(yTicks, chart.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 1, 64)})
	}
	g := chart.Chart{
		Title:      title,
		Width:      900,
		Height:     540,
		Background: chart.Style{Padding: chart.Box{Top: 50, Left: 20, Right: 30, Bottom: 20}},
		XAxis: chart.XAxis{
			Name:           ax.label(m.Name, m.Unit),
			Range:          &chart.ContinuousRange{Min: ax.lo, Max: ax.hi},
			Ticks:          ax.ticks,
			GridMajorStyle: chart.Style{StrokeColor: drawing.Color{R: 220, G: 220, B: 220, A: 255}, StrokeWidth: 1},
		},
		YAxis: chart.YAxis{
			Name:  "fraction of samples ≤ x (ECDF)",
			Range: &chart.ContinuousRange{Min: 0, Max: 1},
			Ticks: yTicks,
		},
		Series: series,
	}
	g.Elements = []chart.Renderable{legendBottomRight(&g)}
	if err := loadChartFont(); err != nil {
		return err
	}
	if err := g.Render(chart.PNG, w); err != nil {
		return fmt.Errorf("figure %q: %w", title, err)
	}
	return nil
}

// finiteLines returns lines without their NaN and infinite values (a
// sample's sort order is kept) and how many each lost.
func finiteLines(lines []CDFLine) ([]CDFLine, []int) {
	out := make([]CDFLine, len(lines))
	dropped := make([]int, len(lines))
	for i, l := range lines {
		out[i] = l
		for k, v := range l.Sorted {
			if !finite(v) {
				kept := make([]float64, 0, len(l.Sorted)-1)
				kept = append(kept, l.Sorted[:k]...)
				for _, v := range l.Sorted[k:] {
					if finite(v) {
						kept = append(kept, v)
					}
				}
				out[i].Sorted, dropped[i] = kept, len(l.Sorted)-len(kept)
				break
			}
		}
	}
	return out, dropped
}

// XYLine is one run's values against the sweep variable.
type XYLine struct {
	Label string
	X, Y  []float64
}

// XYMark is drawn over the lines of an XY figure in the colour of line Of:
// Band draws it thin and dashed (a rerun band's edge), otherwise it is
// large translucent dots only (cells the fit trained on).
type XYMark struct {
	Label string
	X, Y  []float64
	Of    int
	Band  bool
}

// WriteXY renders lines of y against x (the sweep report's P50/P99 figures).
// xTicks label categorical x values; nil means numeric ticks. slo, when
// finite, is drawn as a dashed horizontal line. A NaN y is a cell without a
// value and is skipped; other non-finite points are left out and the line's
// legend says how many.
func WriteXY(w io.Writer, title, xName string, xTicks []chart.Tick, yInfo analysis.MetricInfo, yName string, lines []XYLine, slo float64) error {
	return WriteXYMarked(w, title, xName, xTicks, yInfo, yName, lines, nil, slo)
}

// WriteXYMarked is WriteXY with marks (band edges, markers) drawn over the
// lines; they count towards the axes' ranges.
func WriteXYMarked(w io.Writer, title, xName string, xTicks []chart.Tick, yInfo analysis.MetricInfo, yName string, lines []XYLine, marks []XYMark, slo float64) error {
	if !finite(slo) {
		slo = math.NaN()
	}
	all := lines
	for _, mk := range marks {
		all = append(all[:len(all):len(all)], XYLine{Label: mk.Label, X: mk.X, Y: mk.Y})
	}
	pts := make([][][2]float64, len(all))
	dropped := make([]int, len(all))
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	n := 0
	for i, l := range all {
		for k := range min(len(l.X), len(l.Y)) {
			x, y := l.X[k], l.Y[k]
			switch {
			case math.IsNaN(y) && !math.IsNaN(x):
				continue
			case !finite(x) || !finite(y):
				dropped[i]++
				continue
			}
			pts[i] = append(pts[i], [2]float64{x, y})
			xlo, xhi = min(xlo, x), max(xhi, x)
			ylo, yhi = min(ylo, y), max(yhi, y)
			n++
		}
	}
	if n == 0 {
		xlo, xhi, ylo, yhi = 0, 1, 0, 1
	}
	if !math.IsNaN(slo) {
		ylo, yhi = min(ylo, slo), max(yhi, slo)
	}
	var xa axis
	if xTicks != nil {
		xa = categoryAxis(xTicks, pts)
	} else {
		xa = newAxis(xlo, xhi, false)
		if !xa.log {
			// A sweep's own x values label a linear axis.
			xa.ticks = xTicksFor(pts, xa)
		}
	}
	if len(xa.ticks) > 0 && tickSpan(xa.ticks) < (xa.hi-xa.lo)/1000 {
		// go-chart takes the x range from the ticks, and one tick (a sweep of
		// one value) is a zero range it refuses to draw.
		xa.ticks = append([]chart.Tick{{Value: xa.lo}}, append(xa.ticks, chart.Tick{Value: xa.hi})...)
	}
	ya := newAxis(ylo, yhi, true)
	var series []chart.Series
	drawn := 0
	xmin, xmax := xa.lo, xa.hi
	if len(xa.ticks) > 0 {
		xmin, xmax = tickRange(xa.ticks)
	}
	for i, l := range lines {
		if len(pts[i]) == 0 {
			if dropped[i] > 0 {
				series = append(series, legendOnly(fmt.Sprintf("%s (no finite values, %d left out)", l.Label, dropped[i]), xmin, ya.lo))
			}
			continue
		}
		xs, ys := make([]float64, len(pts[i])), make([]float64, len(pts[i]))
		for k, p := range pts[i] {
			xs[k], ys[k] = xa.pos(p[0]), ya.pos(p[1])
		}
		st := seriesStyle(i)
		st.DotWidth = 4
		st.DotColor = st.StrokeColor
		name := l.Label
		if dropped[i] > 0 {
			name = fmt.Sprintf("%s (%d non-finite left out)", l.Label, dropped[i])
		}
		series = append(series, chart.ContinuousSeries{Name: name, XValues: xs, YValues: ys, Style: st})
		drawn++
	}
	for j, mk := range marks {
		p := pts[len(lines)+j]
		if len(p) == 0 {
			continue
		}
		xs, ys := make([]float64, len(p)), make([]float64, len(p))
		for k, q := range p {
			xs[k], ys[k] = xa.pos(q[0]), ya.pos(q[1])
		}
		st := seriesStyle(mk.Of)
		if mk.Band {
			st.StrokeWidth, st.StrokeDashArray = 1, []float64{4, 3}
		} else {
			c := palette[mk.Of%len(palette)]
			c.A = 90
			st = chart.Style{StrokeColor: drawing.ColorTransparent, StrokeWidth: 0, DotWidth: 10, DotColor: c}
		}
		series = append(series, chart.ContinuousSeries{Name: mk.Label, XValues: xs, YValues: ys, Style: st})
	}
	if drawn == 0 {
		series = append(series, noData())
	}
	if !math.IsNaN(slo) {
		series = append(series, chart.ContinuousSeries{
			Name: "SLO " + formatNum(slo) + " " + yInfo.Unit, XValues: []float64{xmin, xmax}, YValues: []float64{ya.pos(slo), ya.pos(slo)},
			Style: chart.Style{StrokeColor: drawing.Color{R: 150, G: 150, B: 150, A: 255}, StrokeWidth: 1.5, StrokeDashArray: []float64{6, 4}},
		})
	}
	g := chart.Chart{
		Title:      title,
		Width:      900,
		Height:     540,
		Background: chart.Style{Padding: chart.Box{Top: 50, Left: 20, Right: 30, Bottom: 20}},
		XAxis:      chart.XAxis{Name: xName, Range: &chart.ContinuousRange{Min: xa.lo, Max: xa.hi}, Ticks: xa.ticks},
		YAxis:      chart.YAxis{Name: ya.label(yName, yInfo.Unit), Range: &chart.ContinuousRange{Min: ya.lo, Max: ya.hi}, Ticks: ya.ticks},
		Series:     series,
	}
	g.Elements = []chart.Renderable{chart.Legend(&g)}
	if err := loadChartFont(); err != nil {
		return err
	}
	if err := g.Render(chart.PNG, w); err != nil {
		return fmt.Errorf("figure %q: %w", title, err)
	}
	return nil
}

// xTicksFor labels each distinct x of a linear sweep axis.
func xTicksFor(pts [][][2]float64, xa axis) []chart.Tick {
	seen := map[float64]bool{}
	var ticks []chart.Tick
	for _, line := range pts {
		for _, p := range line {
			if !seen[p[0]] {
				seen[p[0]] = true
				ticks = append(ticks, chart.Tick{Value: xa.pos(p[0]), Label: formatNum(p[0])})
			}
		}
	}
	sortTicks(ticks)
	return ticks
}

// categoryAxis places categorical x values (the caller's tick values and
// every point's x) at their rank, so any values, however close or large,
// sit one unit apart.
func categoryAxis(ticks []chart.Tick, pts [][][2]float64) axis {
	var vals []float64
	for _, t := range ticks {
		if finite(t.Value) {
			vals = append(vals, t.Value)
		}
	}
	for _, line := range pts {
		for _, p := range line {
			vals = append(vals, p[0])
		}
	}
	slices.Sort(vals)
	vals = slices.Compact(vals)
	rank := make(map[float64]float64, len(vals))
	for i, v := range vals {
		rank[v] = float64(i)
	}
	a := axis{rank: rank, lo: -0.5, hi: float64(max(len(vals), 1)) - 0.5}
	for _, t := range ticks {
		if finite(t.Value) {
			a.ticks = append(a.ticks, chart.Tick{Value: rank[t.Value], Label: t.Label})
		}
	}
	sortTicks(a.ticks)
	return a
}

func tickSpan(t []chart.Tick) float64 {
	lo, hi := tickRange(t)
	return hi - lo
}

// tickRange is the range go-chart draws an axis with ticks over.
func tickRange(t []chart.Tick) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, tk := range t {
		lo, hi = min(lo, tk.Value), max(hi, tk.Value)
	}
	return lo, hi
}

// legendOnly is a series drawn nowhere, for a line whose every value was
// left out: its legend entry says so.
func legendOnly(name string, x, y float64) chart.Series {
	return chart.ContinuousSeries{Name: name, XValues: []float64{x, x}, YValues: []float64{y, y},
		Style: chart.Style{StrokeColor: drawing.ColorTransparent, StrokeWidth: 1}}
}

func sortTicks(t []chart.Tick) {
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && t[j].Value < t[j-1].Value; j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}
