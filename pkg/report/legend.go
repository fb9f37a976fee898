package report

import (
	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// legendBottomRight draws the legend in the plot's bottom-right corner. On a
// CDF every curve has reached 1 at the right edge, so that corner is the one
// place the legend never hides data (go-chart's own legend sits top-left,
// over the steep rise of short-latency CDFs).
func legendBottomRight(c *chart.Chart) chart.Renderable {
	return func(r chart.Renderer, cb chart.Box, defaults chart.Style) {
		style := chart.Style{FillColor: drawing.ColorWhite, FontColor: chart.DefaultTextColor, FontSize: 9,
			StrokeColor: chart.DefaultAxisColor, StrokeWidth: chart.DefaultAxisLineWidth}.InheritFrom(defaults)
		var labels []string
		var lines []chart.Style
		for _, s := range c.Series {
			if st := s.GetStyle(); !st.Hidden && s.GetName() != "" {
				labels = append(labels, s.GetName())
				lines = append(lines, st)
			}
		}
		if len(labels) == 0 {
			return
		}
		const pad, gap, lineLen = 6, 5, 25
		style.GetTextOptions().WriteToRenderer(r)
		w, h := 0, 0
		for i, l := range labels {
			tb := r.MeasureText(l)
			w = max(w, tb.Width()+gap+lineLen)
			h += tb.Height()
			if i > 0 {
				h += chart.DefaultMinimumTickVerticalSpacing
			}
		}
		box := chart.Box{Right: cb.Right - 8, Bottom: cb.Bottom - 8}
		box.Left, box.Top = box.Right-w-2*pad, box.Bottom-h-2*pad
		chart.Draw.Box(r, box, style)
		style.GetTextOptions().WriteToRenderer(r)
		y := box.Top + pad
		for i, l := range labels {
			tb := r.MeasureText(l)
			ty := y + tb.Height()
			r.Text(l, box.Left+pad, ty)
			ly := ty - tb.Height()/2
			r.SetStrokeColor(lines[i].GetStrokeColor())
			r.SetStrokeWidth(lines[i].GetStrokeWidth())
			r.SetStrokeDashArray(lines[i].GetStrokeDashArray())
			r.MoveTo(box.Right-pad-lineLen, ly)
			r.LineTo(box.Right-pad, ly)
			r.Stroke()
			y = ty + chart.DefaultMinimumTickVerticalSpacing
		}
	}
}
