package report

import (
	"fmt"
	"io"
	"math"
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
type axis struct {
	log    bool
	lo, hi float64 // in axis units
	ticks  []chart.Tick
}

func (a axis) pos(v float64) float64 {
	if !a.log {
		return v
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

// newAxis picks the scale for values in [lo, hi] (data units).
func newAxis(lo, hi float64, fromZero bool) axis {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		lo, hi = 0, 1
	}
	if lo > 0 && hi/lo > logSpan {
		a := axis{log: true, lo: math.Floor(math.Log10(lo)), hi: math.Ceil(math.Log10(hi))}
		for d := a.lo; d <= a.hi; d++ {
			a.ticks = append(a.ticks, chart.Tick{Value: d, Label: formatNum(math.Pow(10, d))})
		}
		return a
	}
	if hi <= lo {
		lo, hi = lo-1, hi+1
	}
	if fromZero {
		// Latency-vs-load axes start at 0 so relative gaps read right.
		lo = min(lo, 0)
	}
	step := niceStep((hi - lo) / 6)
	a := axis{lo: math.Floor(lo/step) * step, hi: math.Ceil(hi/step) * step}
	for v := a.lo; v <= a.hi+step/2; v += step {
		a.ticks = append(a.ticks, chart.Tick{Value: v, Label: formatNum(v)})
	}
	return a
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
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
	r := math.Round(v*1e6) / 1e6
	return strconv.FormatFloat(r, 'g', 6, 64)
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
}

// WriteCDF renders the empirical CDFs of lines, overlaid, as a PNG.
func WriteCDF(w io.Writer, title string, m analysis.MetricInfo, lines []CDFLine) error {
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
	for i, l := range lines {
		if len(l.Sorted) == 0 {
			continue
		}
		xs, ys := analysis.ECDFSteps(l.Sorted, maxCDFPoints)
		for k := range xs {
			xs[k] = ax.pos(xs[k])
		}
		series = append(series, chart.ContinuousSeries{
			Name: fmt.Sprintf("%s (n=%d)", l.Label, len(l.Sorted)), XValues: xs, YValues: ys, Style: seriesStyle(i),
		})
	}
	if len(series) == 0 {
		series = append(series, noData())
		ax = axis{lo: 0, hi: 1}
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
// xTicks label categorical x values; nil means numeric ticks. slo, when not
// NaN, is drawn as a dashed horizontal line.
func WriteXY(w io.Writer, title, xName string, xTicks []chart.Tick, yInfo analysis.MetricInfo, yName string, lines []XYLine, slo float64) error {
	return WriteXYMarked(w, title, xName, xTicks, yInfo, yName, lines, nil, slo)
}

// WriteXYMarked is WriteXY with marks (band edges, markers) drawn over the
// lines; they count towards the axes' ranges.
func WriteXYMarked(w io.Writer, title, xName string, xTicks []chart.Tick, yInfo analysis.MetricInfo, yName string, lines []XYLine, marks []XYMark, slo float64) error {
	all := lines
	for _, mk := range marks {
		all = append(all[:len(all):len(all)], XYLine{Label: mk.Label, X: mk.X, Y: mk.Y})
	}
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	n := 0
	for _, l := range all {
		for k := range l.X {
			if math.IsNaN(l.Y[k]) {
				continue
			}
			xlo, xhi = min(xlo, l.X[k]), max(xhi, l.X[k])
			ylo, yhi = min(ylo, l.Y[k]), max(yhi, l.Y[k])
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
	switch {
	case xTicks != nil:
		xa = axis{lo: xlo - 0.5, hi: xhi + 0.5, ticks: xTicks}
	case xlo > 0 && xhi/xlo > logSpan:
		xa = newAxis(xlo, xhi, false)
	default:
		pad := (xhi - xlo) * 0.05
		if pad == 0 {
			pad = 0.5
		}
		xa = axis{lo: xlo - pad, hi: xhi + pad}
		xa.ticks = xTicksFor(all, xa)
	}
	if len(xa.ticks) > 0 && tickSpan(xa.ticks) == 0 {
		// go-chart takes the x range from the ticks, and one tick (a sweep of
		// one value) is a zero range it refuses to draw.
		xa.ticks = append([]chart.Tick{{Value: xa.lo}}, append(xa.ticks, chart.Tick{Value: xa.hi})...)
	}
	ya := newAxis(ylo, yhi, true)
	var series []chart.Series
	for i, l := range lines {
		var xs, ys []float64
		for k := range l.X {
			if math.IsNaN(l.Y[k]) {
				continue
			}
			xs = append(xs, xa.pos(l.X[k]))
			ys = append(ys, ya.pos(l.Y[k]))
		}
		if len(xs) == 0 {
			continue
		}
		st := seriesStyle(i)
		st.DotWidth = 4
		st.DotColor = st.StrokeColor
		series = append(series, chart.ContinuousSeries{Name: l.Label, XValues: xs, YValues: ys, Style: st})
	}
	for _, mk := range marks {
		var xs, ys []float64
		for k := range mk.X {
			if !math.IsNaN(mk.Y[k]) {
				xs, ys = append(xs, xa.pos(mk.X[k])), append(ys, ya.pos(mk.Y[k]))
			}
		}
		if len(xs) == 0 {
			continue
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
	if len(series) == 0 {
		series = append(series, noData())
	}
	if !math.IsNaN(slo) {
		series = append(series, chart.ContinuousSeries{
			Name: "SLO " + formatNum(slo) + " " + yInfo.Unit, XValues: []float64{xa.pos(xlo), xa.pos(xhi)}, YValues: []float64{ya.pos(slo), ya.pos(slo)},
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
func xTicksFor(lines []XYLine, xa axis) []chart.Tick {
	seen := map[float64]bool{}
	var ticks []chart.Tick
	for _, l := range lines {
		for _, x := range l.X {
			if !seen[x] {
				seen[x] = true
				ticks = append(ticks, chart.Tick{Value: xa.pos(x), Label: formatNum(x)})
			}
		}
	}
	sortTicks(ticks)
	return ticks
}

func tickSpan(t []chart.Tick) float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, tk := range t {
		lo, hi = min(lo, tk.Value), max(hi, tk.Value)
	}
	return hi - lo
}

func sortTicks(t []chart.Tick) {
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && t[j].Value < t[j-1].Value; j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}
