package report

import (
	"bytes"
	"image/png"
	"math"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/wcharczuk/go-chart/v2"
)

func TestAxis(t *testing.T) {
	a := newAxis(0.5, 2000, false)
	if !a.log || a.lo != -1 || a.hi != 4 {
		t.Fatalf("axis over 0.5..2000 ms = %+v, want log10 from -1 to 4", a)
	}
	var labels []string
	for _, tk := range a.ticks {
		labels = append(labels, tk.Label)
	}
	if got := fmtList(labels); got != "0.1 1 10 100 1000 10000" {
		t.Errorf("log ticks = %s", got)
	}
	if p := a.pos(100); p != 2 {
		t.Errorf("pos(100 ms) = %v, want 2", p)
	}
	if p := a.pos(0); p != -1 {
		t.Errorf("pos(0) = %v, want the left edge -1", p)
	}
	l := newAxis(20, 45, false)
	if l.log || len(l.ticks) < 3 {
		t.Errorf("linear axis over 20..45 = %+v", l)
	}
	if got := fmtList(tickLabels(l)); got != "20 25 30 35 40 45" {
		t.Errorf("linear ticks over 20..45 = %s", got)
	}
	if p := l.pos(30); p != 2 {
		t.Errorf("pos(30) = %v, want the third tick", p)
	}
	if z := newAxis(20, 45, true); z.ticks[0].Label != "0" {
		t.Errorf("from-zero axis starts at %s", z.ticks[0].Label)
	}
	if got := fmtList(tickLabels(newAxis(0, 0.6, false))); got != "0 0.1 0.2 0.3 0.4 0.5 0.6" {
		t.Errorf("ticks over 0..0.6 = %s (float noise in labels?)", got)
	}
}

func tickLabels(a axis) []string {
	var labels []string
	for _, tk := range a.ticks {
		labels = append(labels, tk.Label)
	}
	return labels
}

func fmtList(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

func TestWriteCDF(t *testing.T) {
	wide := make([]float64, 5000)
	for i := range wide {
		wide[i] = 0.2 * math.Pow(1.002, float64(i)) // 0.2 ms .. ~4.4 s: log axis
	}
	cases := map[string][]CDFLine{
		"log axis":   {{Label: "real", Sorted: wide}, {Label: "sim", Sorted: wide[100:]}},
		"with zeros": {{Label: "real", Sorted: []float64{0, 0, 1, 5, 500}}},
		"one empty":  {{Label: "real", Sorted: []float64{3, 4}}, {Label: "sim", Sorted: nil}},
		"no data":    {{Label: "real", Sorted: nil}},
	}
	for name, lines := range cases {
		var buf bytes.Buffer
		if err := WriteCDF(&buf, name, analysis.Info(analysis.ITL), lines); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Errorf("%s: not a PNG: %v", name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 540 {
			t.Errorf("%s: %v", name, b)
		}
	}
}

func TestWriteXY(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name  string
		ticks []chart.Tick
		lines []XYLine
		slo   float64
	}{
		{"sweep", nil, []XYLine{{"real", []float64{2, 4, 8}, []float64{30, 40, 90}}}, 50},
		// A matrix of one value: go-chart refused a zero x range.
		{"one x value", nil, []XYLine{{"real", []float64{6}, []float64{30}}, {"sim", []float64{6}, []float64{35}}}, 50},
		{"one category", []chart.Tick{{Value: 0, Label: "vllm"}}, []XYLine{{"real", []float64{0}, []float64{30}}}, nan},
		{"no data", nil, []XYLine{{"real", []float64{6}, []float64{nan}}}, nan},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		if err := WriteXY(&buf, tc.name, "rate", tc.ticks, analysis.Info(analysis.TTFT), "P50", tc.lines, tc.slo); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if _, err := png.Decode(&buf); err != nil {
			t.Errorf("%s: not a PNG: %v", tc.name, err)
		}
	}
}
