package report

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/gsim-dev/gsim/pkg/analysis"
	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// Percentiles of a whole run hide bursts: a trace replayed over a day has
// quiet nights and busy peaks, and its P99 TTFT is set by a few minutes of
// queueing. The timeline splits each run into windows of arrival time and
// gives each window its own TTFT and TPOT percentiles, under the arrival
// rate that caused them.

// TimelineFile and TimelineTable are the figure and table compare writes.
const (
	TimelineFile  = "figs/latency_over_time.png"
	TimelineTable = "tables/timeline.csv"
)

// maxWindows bounds the windows of an automatically sized timeline.
const maxWindows = 120

// niceWindows are the window widths an automatic timeline picks from.
var niceWindows = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// TimelineWindow is the narrowest nice width that cuts span into at most
// maxWindows windows.
func TimelineWindow(span time.Duration) time.Duration {
	for _, w := range niceWindows {
		if span <= w*maxWindows {
			return w
		}
	}
	return time.Duration(math.Ceil(float64(span)/float64(maxWindows)/float64(24*time.Hour))) * 24 * time.Hour
}

// TimelineRow is one window of one run.
type TimelineRow struct {
	Run        string
	StartNs    int64
	EndNs      int64
	Arrivals   int     // requests that arrived in the window
	Failed     int     // of them, failed
	RateRPS    float64 // Arrivals / window seconds
	TTFTP50    float64 // ms, NaN without completed requests
	TTFTP99    float64
	TPOTP50    float64
	TPOTP99    float64
	TPOTCounts int // requests with a TPOT
}

// timeline cuts a run's requests (sorted by arrival) into windows of width
// w from 0 to end.
func timeline(name string, pts []analysis.TimePoint, w, end int64) []TimelineRow {
	n := int((end + w - 1) / w)
	n = max(n, 1)
	rows := make([]TimelineRow, n)
	var ttft, tpot []float64
	i := 0
	for k := range rows {
		lo, hi := int64(k)*w, int64(k+1)*w
		r := TimelineRow{Run: name, StartNs: lo, EndNs: hi}
		ttft, tpot = ttft[:0], tpot[:0]
		for ; i < len(pts) && (pts[i].ArrivalNs < hi || k == n-1); i++ {
			p := pts[i]
			r.Arrivals++
			if math.IsNaN(float64(p.TTFTMs)) {
				r.Failed++
				continue
			}
			ttft = append(ttft, float64(p.TTFTMs))
			if !math.IsNaN(float64(p.TPOTMs)) {
				tpot = append(tpot, float64(p.TPOTMs))
			}
		}
		slices.Sort(ttft)
		slices.Sort(tpot)
		r.RateRPS = float64(r.Arrivals) / (float64(w) / 1e9)
		r.TTFTP50, r.TTFTP99 = analysis.Quantile(ttft, 0.5), analysis.Quantile(ttft, 0.99)
		r.TPOTP50, r.TPOTP99 = analysis.Quantile(tpot, 0.5), analysis.Quantile(tpot, 0.99)
		r.TPOTCounts = len(tpot)
		rows[k] = r
	}
	return rows
}

// writeTimeline writes the latency-over-time figure and its table.
func writeTimeline(outDir string, res *Result, runs []*analysis.Run, window time.Duration) (*figure, error) {
	var end int64
	for _, r := range runs {
		if n := len(r.Timeline); n > 0 {
			end = max(end, r.Timeline[n-1].ArrivalNs+1)
		}
	}
	if end == 0 {
		return nil, nil
	}
	if window <= 0 {
		window = TimelineWindow(time.Duration(end))
	}
	w := window.Nanoseconds()
	all := make([][]TimelineRow, len(runs))
	var rows [][]string
	for i, r := range runs {
		all[i] = timeline(res.Runs[i].Name, r.Timeline, w, end)
		for _, t := range all[i] {
			rows = append(rows, []string{t.Run, csvNum(float64(t.StartNs) / 1e9), csvNum(float64(t.EndNs) / 1e9),
				strconv.Itoa(t.Arrivals), strconv.Itoa(t.Failed), csvNum(t.RateRPS),
				csvNum(t.TTFTP50), csvNum(t.TTFTP99), csvNum(t.TPOTP50), csvNum(t.TPOTP99)})
		}
	}
	head := []string{"run", "window_start_s", "window_end_s", "arrivals", "failed", "arrival_rate_rps",
		"ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"}
	if err := writeCSV(filepath.Join(outDir, TimelineTable), head, rows); err != nil {
		return nil, err
	}
	labels := make([]string, len(runs))
	for i := range runs {
		labels[i] = res.Runs[i].Label
	}
	f, err := os.Create(filepath.Join(outDir, TimelineFile))
	if err != nil {
		return nil, err
	}
	err = WriteTimeline(f, labels, all, window)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return &figure{File: TimelineFile, Title: "Latency over time",
		Caption: fmt.Sprintf("P50 (dashed) and P99 (solid) of TTFT and TPOT over windows of %s of arrival time, each request in the window it arrived in; bottom: the arrival rate (reference run). Per-window numbers are in %s.",
			window, TimelineTable)}, nil
}

// timeUnit picks the unit of a time axis spanning end ns.
func timeUnit(end int64) (string, float64) {
	switch {
	case end >= int64(3*time.Hour):
		return "h", float64(time.Hour)
	case end >= int64(3*time.Minute):
		return "min", float64(time.Minute)
	}
	return "s", float64(time.Second)
}

// WriteTimeline renders three stacked panels sharing the time axis: TTFT
// P50/P99 per window, TPOT P50/P99 per window, and the arrival rate.
func WriteTimeline(w interface{ Write([]byte) (int, error) }, labels []string, rows [][]TimelineRow, window time.Duration) error {
	if err := loadChartFont(); err != nil {
		return err
	}
	var end int64
	for _, rr := range rows {
		if len(rr) > 0 {
			end = max(end, rr[len(rr)-1].EndNs)
		}
	}
	unit, div := timeUnit(end)
	xName := fmt.Sprintf("time since the first arrival (%s), windows of %s", unit, window)
	mid := func(t TimelineRow) float64 { return (float64(t.StartNs) + float64(t.EndNs)) / 2 / div }
	xa := axis{lo: 0, hi: float64(end) / div}
	step := niceStep(xa.hi / 8)
	for v := 0.0; v <= xa.hi+step/2; v += step {
		xa.ticks = append(xa.ticks, chart.Tick{Value: v, Label: formatNum(v)})
	}
	latency := func(title string, get func(TimelineRow) (p50, p99 float64)) ([]byte, error) {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, rr := range rows {
			for _, t := range rr {
				a, b := get(t)
				for _, v := range []float64{a, b} {
					if !math.IsNaN(v) && v > 0 {
						lo, hi = min(lo, v), max(hi, v)
					}
				}
			}
		}
		ya := newAxis(lo, hi, true)
		var series []chart.Series
		for i, rr := range rows {
			for q, name := range []string{"P99", "P50"} {
				var xs, ys []float64
				for _, t := range rr {
					a, b := get(t)
					v := b
					if q == 1 {
						v = a
					}
					if math.IsNaN(v) || v <= 0 && ya.log {
						continue
					}
					xs, ys = append(xs, mid(t)), append(ys, ya.pos(v))
				}
				if len(xs) == 0 {
					continue
				}
				st := seriesStyle(i)
				if q == 1 {
					st.StrokeWidth = 1.5
					st.StrokeDashArray = []float64{5, 3}
				}
				series = append(series, chart.ContinuousSeries{Name: labels[i] + " " + name, XValues: xs, YValues: ys, Style: st})
			}
		}
		if len(series) == 0 {
			series = append(series, noData())
		}
		return renderPanel(title, xName, xa, ya.label(title, "ms"), ya, series, 330)
	}
	ttft, err := latency("TTFT", func(t TimelineRow) (float64, float64) { return t.TTFTP50, t.TTFTP99 })
	if err != nil {
		return err
	}
	tpot, err := latency("TPOT", func(t TimelineRow) (float64, float64) { return t.TPOTP50, t.TPOTP99 })
	if err != nil {
		return err
	}
	rate, ra := rateSeries(rows, mid)
	rp, err := renderPanel("Arrival rate", xName, xa, "requests / s", ra, []chart.Series{rate}, 230)
	if err != nil {
		return err
	}
	return stackPNG(w, ttft, tpot, rp)
}

// rateSeries is the arrival rate per window of the reference run (rows[0]),
// placed on its axis: linear axes place values by tick index (axis.pos),
// so raw rates would be drawn off the panel's scale.
func rateSeries(rows [][]TimelineRow, mid func(TimelineRow) float64) (chart.ContinuousSeries, axis) {
	var xs, rates []float64
	hi := 0.0
	if len(rows) > 0 {
		for _, t := range rows[0] {
			xs, rates = append(xs, mid(t)), append(rates, t.RateRPS)
			hi = max(hi, t.RateRPS)
		}
	}
	ra := newAxis(0, max(hi, 1e-9), true)
	ys := make([]float64, len(rates))
	for i, r := range rates {
		ys[i] = ra.pos(r)
	}
	return chart.ContinuousSeries{Name: "arrival rate", XValues: xs, YValues: ys,
		Style: chart.Style{StrokeColor: drawing.Color{R: 90, G: 90, B: 90, A: 255}, StrokeWidth: 1.5,
			FillColor: drawing.Color{R: 200, G: 200, B: 200, A: 160}}}, ra
}

func renderPanel(title, xName string, xa axis, yName string, ya axis, series []chart.Series, height int) ([]byte, error) {
	g := chart.Chart{
		Title:  title,
		Width:  1100,
		Height: height,
		// Every panel keeps the legend's left margin so their time axes align.
		Background: chart.Style{Padding: chart.Box{Top: 40, Left: 250, Right: 30, Bottom: 10}},
		XAxis: chart.XAxis{Name: xName, Range: &chart.ContinuousRange{Min: xa.lo, Max: xa.hi}, Ticks: xa.ticks,
			GridMajorStyle: chart.Style{StrokeColor: drawing.Color{R: 225, G: 225, B: 225, A: 255}, StrokeWidth: 1}},
		YAxis:  chart.YAxis{Name: yName, Range: &chart.ContinuousRange{Min: ya.lo, Max: ya.hi}, Ticks: ya.ticks},
		Series: series,
	}
	if len(series) > 1 {
		g.Elements = []chart.Renderable{chart.LegendLeft(&g)}
	}
	var b bytes.Buffer
	if err := g.Render(chart.PNG, &b); err != nil {
		return nil, fmt.Errorf("figure %q: %w", title, err)
	}
	return b.Bytes(), nil
}

// stackPNG writes the panels one above the other as one PNG.
func stackPNG(w interface{ Write([]byte) (int, error) }, panels ...[]byte) error {
	var imgs []image.Image
	width, height := 0, 0
	for _, p := range panels {
		im, err := png.Decode(bytes.NewReader(p))
		if err != nil {
			return err
		}
		imgs = append(imgs, im)
		width = max(width, im.Bounds().Dx())
		height += im.Bounds().Dy()
	}
	out := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	y := 0
	for _, im := range imgs {
		r := im.Bounds()
		draw.Draw(out, image.Rect(0, y, r.Dx(), y+r.Dy()), im, r.Min, draw.Src)
		y += r.Dy()
	}
	return png.Encode(w, out)
}
