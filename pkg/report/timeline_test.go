package report

import (
	"bytes"
	"image/png"
	"math"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/analysis"
)

func TestTimelineWindow(t *testing.T) {
	for span, want := range map[time.Duration]time.Duration{
		90 * time.Second:            time.Second,
		time.Hour:                   30 * time.Second,
		24 * time.Hour:              15 * time.Minute,
		7 * 24 * time.Hour:          2 * time.Hour,
		time.Duration(0):            time.Second,
		400 * 24 * time.Hour:        4 * 24 * time.Hour,
		120 * time.Minute:           time.Minute,
		120*time.Minute + 1:         2 * time.Minute,
		maxWindows * 24 * time.Hour: 24 * time.Hour,
	} {
		if got := TimelineWindow(span); got != want {
			t.Errorf("span %s: window %s, want %s", span, got, want)
		}
	}
}

// A burst in the middle of a run must show in its window's percentiles and
// rate, and every request must land in exactly one window.
func TestTimelineShowsABurst(t *testing.T) {
	nan := float32(math.NaN())
	var pts []analysis.TimePoint
	for s := int64(0); s < 30; s++ { // one request a second, 10 ms TTFT
		pts = append(pts, analysis.TimePoint{ArrivalNs: s * 1e9, TTFTMs: 10, TPOTMs: 5})
	}
	for k := int64(0); k < 50; k++ { // a burst of 50 in second 12: queueing
		pts = append(pts, analysis.TimePoint{ArrivalNs: 12e9 + k*1e7, TTFTMs: float32(100 + 10*k), TPOTMs: 8})
	}
	pts = append(pts, analysis.TimePoint{ArrivalNs: 20e9, TTFTMs: nan, TPOTMs: nan}) // failed
	sortPts(pts)
	rows := timeline("r", pts, int64(5*time.Second), 30e9)
	if len(rows) != 6 {
		t.Fatalf("%d windows, want 6", len(rows))
	}
	total := 0
	for _, r := range rows {
		total += r.Arrivals
	}
	if total != len(pts) {
		t.Fatalf("windows hold %d requests, want %d", total, len(pts))
	}
	burst, quiet := rows[2], rows[1]
	if burst.Arrivals != 55 || burst.RateRPS != 11 || !(burst.TTFTP99 > 500) || quiet.TTFTP99 != 10 || quiet.RateRPS != 1 {
		t.Fatalf("burst window %+v, quiet window %+v", burst, quiet)
	}
	if rows[4].Failed != 1 || rows[4].Arrivals != 6 {
		t.Fatalf("failed request not counted: %+v", rows[4])
	}
	var b bytes.Buffer
	if err := WriteTimeline(&b, []string{"ref"}, [][]TimelineRow{rows}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	im, err := png.Decode(&b)
	if err != nil || im.Bounds().Dy() < 800 {
		t.Fatalf("figure: %v, %v", err, im.Bounds())
	}
}

func sortPts(p []analysis.TimePoint) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].ArrivalNs < p[j-1].ArrivalNs; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

// The rate panel's values must be placed on its axis (linear axes place by
// tick index): raw rates above the first ticks were drawn off the panel.
func TestTimelineRateOnItsAxis(t *testing.T) {
	var rows []TimelineRow
	for i, r := range []float64{0, 3, 47.5, 12, 0.25} {
		rows = append(rows, TimelineRow{StartNs: int64(i) * 30e9, EndNs: int64(i+1) * 30e9, RateRPS: r})
	}
	s, ra := rateSeries([][]TimelineRow{rows}, func(r TimelineRow) float64 { return float64(r.StartNs) })
	top := 0.0
	for i, y := range s.YValues {
		if y < ra.lo || y > ra.hi {
			t.Errorf("window %d: rate %g at %g, outside the axis [%g, %g]", i, rows[i].RateRPS, y, ra.lo, ra.hi)
		}
		top = max(top, y)
	}
	// The highest rate reaches into the top tick interval of the axis.
	if last := ra.ticks[len(ra.ticks)-1].Value; top <= last-1 {
		t.Errorf("highest rate at %g, top tick at %g: the axis is too tall", top, last)
	}
	if ra.ticks[len(ra.ticks)-1].Label != "50" {
		t.Errorf("top tick %q, want 50 for a rate of 47.5", ra.ticks[len(ra.ticks)-1].Label)
	}
}
