package report

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/gsim-dev/gsim/pkg/analysis"
	chart "github.com/wcharczuk/go-chart/v2"
)

// renderSweep writes a computed sweep report: summary.md and report.html
// (from one document), figures, tables, sweep.json and verdict.txt.
func renderSweep(ctx context.Context, res *SweepResult, outDir string) error {
	in := res.in
	runs := res.Runs
	if err := os.MkdirAll(filepath.Join(outDir, "figs"), 0o755); err != nil {
		return err
	}
	d := &doc{Title: res.Title}
	var cands []string
	for _, r := range runs[1:] {
		cands = append(cands, fmt.Sprintf("**%s** (`%s`)", r.Label, r.Name))
	}
	d.p("Reference: **%s** (`%s`). Candidates: %s. %d cells over `%s`, in %d group(s).",
		runs[0].Label, runs[0].Name, strings.Join(cands, ", "), len(in.Cells), res.X, len(res.Groups))
	if in.SLO != nil {
		d.p("SLO: %s. Capacity is the highest `%s` tested whose statistics meet every bound; the SLO breaks at the first `%s` that misses one.", in.SLO.describe(), res.X, res.X)
	}
	if len(in.Trained) > 0 {
		d.p("Cells marked **(trained)** are those whose real run the step model was fitted on (the fit's own `training_cells`); the others are held out.")
	}
	d.h("Verdict")
	d.p("%s", res.Verdict)
	d.list(res.Lines)

	var latRows, errRows, capRows, bandRows [][]string
	for _, g := range res.Groups {
		if err := ctx.Err(); err != nil {
			return err
		}
		if g.Name != "" {
			d.h("Group " + g.Name)
		} else {
			d.h("Latency against " + res.X)
		}
		prefix := ""
		if g.Name != "" {
			prefix = slug(g.Name) + "_"
		}
		xCell := func(ci int) string {
			if g.Trained[ci] {
				return g.XLabel[ci] + " (trained)"
			}
			return g.XLabel[ci]
		}
		// Latency table: per x, per run P50/P90/P99 of TTFT and TPOT; the
		// reference's cells carry the rerun band.
		lt := table{Head: []string{res.XAxis}}
		for _, r := range runs {
			for _, s := range sweepSeries {
				lt.Head = append(lt.Head, fmt.Sprintf("%s %s %s", r.Label, strings.ToUpper(s.stat), analysis.Info(s.metric).Name))
			}
		}
		for ci, c := range g.Cells {
			row := []string{xCell(ci)}
			for ri, r := range runs {
				rr := c.Run(r.Name)
				for _, s := range sweepSeries {
					v := math.NaN()
					if rr != nil {
						v = rr.Stats[s.metric].Get(s.stat)
					}
					text := fmtVal(v)
					if b, ok := noiseBand(c, s.metric, s.stat); ok && ri == 0 && b.Defined() {
						text += fmt.Sprintf(" (%s–%s)", fmtVal(float64(b.Lo)), fmtVal(float64(b.Hi)))
					}
					row = append(row, text)
				}
				if rr == nil {
					continue
				}
				for _, m := range analysis.LatencyMetrics {
					for _, st := range analysis.StatNames {
						latRows = append(latRows, []string{c.Instance, g.Name, g.XLabel[ci], r.Name, m.Key, st, csvNum(rr.Stats[m.Key].Get(st))})
					}
				}
			}
			lt.Rows = append(lt.Rows, row)
			if c.Noise != nil {
				for _, m := range analysis.LatencyMetrics {
					for _, st := range analysis.StatNames {
						if b, ok := c.Noise.Bands[m.Key][st]; ok {
							bandRows = append(bandRows, []string{c.Instance, g.Name, g.XLabel[ci], m.Key, st,
								csvNum(c.Runs[0].Stats[m.Key].Get(st)), csvNum(float64(b.Lo)), csvNum(float64(b.Hi)), fmt.Sprint(b.Runs), fmt.Sprint(b.MinCount)})
						}
					}
				}
			}
			for _, cand := range c.Candidates {
				for _, m := range analysis.LatencyMetrics {
					for _, st := range analysis.StatNames {
						within := ""
						if cand.Noise != nil {
							if _, ok := cand.Noise.Within[m.Key][st]; ok {
								within = fmt.Sprint(cand.Noise.Within[m.Key][st])
							}
						}
						errRows = append(errRows, []string{c.Instance, g.Name, g.XLabel[ci], cand.Name, m.Key, st, csvNum(float64(cand.RelErrors[m.Key][st])), within})
					}
				}
			}
		}
		d.p("Latencies in ms; for %s, the rerun band (min–max over its reruns) in brackets; quantiles by %s.", runs[0].Label, analysis.QuantileMethod)
		d.table(lt)

		// Error table: per cell and candidate, every error with ✓ inside
		// the rerun band (at least ±3%) and ✗ outside, and the verdict.
		et := table{Head: []string{res.XAxis, "candidate"}}
		for _, s := range sweepSeries {
			et.Head = append(et.Head, fmt.Sprintf("%s %s error", strings.ToUpper(s.stat), analysis.Info(s.metric).Name))
		}
		et.Head = append(et.Head, "W1 TTFT / rerun's", "W1 TPOT / rerun's", "verdict")
		for ci, c := range g.Cells {
			for _, cand := range c.Candidates {
				row := []string{xCell(ci), cand.Label}
				for _, s := range sweepSeries {
					e := fmtSignedPct(float64(cand.RelErrors[s.metric][s.stat]))
					if cand.Noise != nil && e != "—" {
						if b, ok := noiseBand(c, s.metric, s.stat); ok && b.Defined() {
							if cand.Noise.Within[s.metric][s.stat] {
								e += " ✓"
							} else {
								e += " ✗"
							}
						}
					}
					row = append(row, e)
				}
				ratio := func(m string) string {
					if cand.Noise == nil {
						return "—"
					}
					return fmtRatio(cand.Noise.Ratio[m].W1)
				}
				v := "no rerun band"
				if cand.Verdict != nil {
					v = fmt.Sprintf("%d/%d within noise", cand.Verdict.Met, cand.Verdict.Held)
					if cand.Verdict.Indistinguishable {
						v += ": indistinguishable"
					}
				}
				row = append(row, ratio(analysis.TTFT), ratio(analysis.TPOT), v)
				et.Rows = append(et.Rows, row)
			}
		}
		d.p("Signed relative errors (candidate - reference) / reference; negative means the simulator under-predicts. ✓: inside the rerun band widened to at least ±%.0f%%; ✗: outside.", 100*analysis.TolFloor)
		d.table(et)

		if err := sweepFigures(d, res, g, prefix, outDir); err != nil {
			return err
		}

		if in.SLO != nil {
			ct := table{Head: []string{"run", "capacity (" + res.XAxis + ")", "error vs " + runs[0].Label, "SLO breaks at", "note"}}
			for _, r := range runs {
				capX, idx := capacity(g, r.Name, in.SLO)
				note := ""
				switch {
				case idx < 0:
					note = "SLO missed at every " + res.X + " tested"
				case idx == len(g.Cells)-1:
					note = "met at the highest " + res.X + " tested: capacity is at least this"
				}
				capLabel := "none"
				if idx >= 0 {
					capLabel = g.XLabel[idx]
				}
				rel := math.NaN()
				if !res.categorical && r.Name != runs[0].Name {
					rel = analysis.RelError(g.Capacity[runs[0].Name], capX)
				}
				errText := "—"
				if r.Name != runs[0].Name {
					errText = fmtSignedPct(rel)
				}
				ct.Rows = append(ct.Rows, []string{r.Label, capLabel, errText, breakText(g, g.Breaks[r.Name], res.X), note})
				capRows = append(capRows, []string{g.Name, r.Name, capLabel, csvNum(rel), in.SLO.describe()})
			}
			d.p("Capacity at the SLO (%s):", in.SLO.describe())
			d.table(ct)
		}
	}

	d.h("Cells")
	cellT := table{Head: []string{"cell", res.X, "trained on", "verdict", "report"}}
	for _, c := range res.Cells {
		tr := "no"
		if c.Trained {
			tr = "yes"
		}
		link := "—"
		if c.Report != "" {
			link = "[report](" + c.Report + ")"
		}
		cellT.Rows = append(cellT.Rows, []string{c.Instance, c.X, tr, orDash(c.Verdict), link})
	}
	d.p("Each cell's own report (its compare stage: every table, CDFs, provenance), relative to this report in `tmp/runs/<experiment>/`:")
	d.table(cellT)
	if err := cdfGrid(d, res, outDir); err != nil {
		return err
	}

	d.h("Definitions")
	var defs []string
	for _, m := range analysis.LatencyMetrics {
		defs = append(defs, fmt.Sprintf("**%s** (%s): %s.", m.Name, m.Unit, m.Definition))
	}
	defs = append(defs, "**Quantiles**: "+analysis.QuantileMethod+".",
		"**Relative error** = (candidate - reference) / reference. **KS** = sup |F_ref - F_cand| of the empirical CDFs. **W1** = ∫ |F_ref - F_cand| dx.",
		fmt.Sprintf("**Rerun band**: the min–max of a statistic over the reference and its reruns (separate engine processes on the same workload), widened to at least ±%.0f%% when a candidate is judged against it. A candidate is **indistinguishable from a rerun** in a cell when P50 and P90 of TTFT, TPOT and E2E lie in the band (P99 too where every run has at least %d requests) and its W1 to the reference is at most %.2f× a rerun's.",
			100*analysis.TolFloor, analysis.MinTailRequests, analysis.MaxDistanceRatio))
	d.list(defs)
	d.h("Provenance")
	pt := table{Head: []string{"cell", "compare stage key", "workload digest"}}
	for _, g := range res.Groups {
		for _, c := range g.Cells {
			pt.Rows = append(pt.Rows, []string{c.Instance, shortKey(c.Key), shortKey(c.WorkloadDigest)})
		}
	}
	d.table(pt)
	for _, r := range in.Cells[0].Runs {
		if gpu := gpuName(r.Hardware); gpu != "" {
			d.p("Run `%s` (%s, %s): GPU %s, engine %s.", r.Name, r.Label, r.RunType, gpu, cellString(r.Engine))
		} else {
			d.p("Run `%s` (%s, %s): engine %s.", r.Name, r.Label, r.RunType, cellString(r.Engine))
		}
	}

	tables := filepath.Join(outDir, "tables")
	for _, t := range []struct {
		name   string
		header []string
		rows   [][]string
		skip   bool
	}{
		{"latency.csv", []string{"cell", "group", res.X, "run", "metric", "stat", "value_ms"}, latRows, false},
		{"errors.csv", []string{"cell", "group", res.X, "candidate", "metric", "stat", "rel_error", "within_noise"}, errRows, false},
		{"bands.csv", []string{"cell", "group", res.X, "metric", "stat", "ref_ms", "band_lo_ms", "band_hi_ms", "runs", "min_count"}, bandRows, len(bandRows) == 0},
		{"capacity.csv", []string{"group", "run", "capacity_" + res.X, "rel_error", "slo"}, capRows, in.SLO == nil},
	} {
		if t.skip {
			continue
		}
		if err := writeCSV(filepath.Join(tables, t.name), t.header, t.rows); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(outDir, "summary.md"), []byte(d.markdown()), 0o644); err != nil {
		return err
	}
	html, err := d.html(outDir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, "report.html"), html, 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", SweepFile, err)
	}
	if err := os.WriteFile(filepath.Join(outDir, SweepFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outDir, VerdictFile), []byte(res.Verdict+"\n"), 0o644)
}

// sweepFigures draws each statistic against x: a line per run, the
// reference's rerun band as dashed edges, the trained cells marked.
func sweepFigures(d *doc, res *SweepResult, g *Group, prefix, outDir string) error {
	var xTicks []chart.Tick
	if res.categorical {
		for i, l := range g.XLabel {
			xTicks = append(xTicks, chart.Tick{Value: g.X[i], Label: l})
		}
	}
	for _, s := range sweepSeries {
		m := analysis.Info(s.metric)
		var lines []XYLine
		for _, r := range res.Runs {
			l := XYLine{Label: r.Label}
			for ci, c := range g.Cells {
				if rr := c.Run(r.Name); rr != nil {
					l.X = append(l.X, g.X[ci])
					l.Y = append(l.Y, rr.Stats[s.metric].Get(s.stat))
				}
			}
			lines = append(lines, l)
		}
		lo := XYMark{Label: res.Runs[0].Label + " rerun band", Band: true}
		hi := XYMark{Label: "", Band: true}
		trained := XYMark{Label: "trained on (fit)"}
		for ci, c := range g.Cells {
			if b, ok := noiseBand(c, s.metric, s.stat); ok && b.Defined() {
				lo.X, lo.Y = append(lo.X, g.X[ci]), append(lo.Y, float64(b.Lo))
				hi.X, hi.Y = append(hi.X, g.X[ci]), append(hi.Y, float64(b.Hi))
			}
			if g.Trained[ci] {
				if rr := c.Run(res.Runs[0].Name); rr != nil {
					trained.X, trained.Y = append(trained.X, g.X[ci]), append(trained.Y, rr.Stats[s.metric].Get(s.stat))
				}
			}
		}
		var marks []XYMark
		if len(lo.X) > 0 {
			marks = append(marks, lo, hi)
		}
		if len(trained.X) > 0 {
			marks = append(marks, trained)
		}
		name := fmt.Sprintf("%s %s", strings.ToUpper(s.stat), m.Name)
		title := name + " vs " + res.X
		if g.Name != "" {
			title += " (" + g.Name + ")"
		}
		f := figure{File: fmt.Sprintf("figs/%s%s_%s_vs_%s.png", prefix, s.metric, s.stat, slug(res.X)), Title: title,
			Caption: fmt.Sprintf("%s of %s per cell, one line per run; dashed: %s's rerun band; large dots: cells the fit trained on. %s.",
				strings.ToUpper(s.stat), m.Name, res.Runs[0].Label, upperFirst(m.Definition))}
		slo := math.NaN()
		if res.SLO != nil && s.stat == analysis.StatP99 {
			switch {
			case s.metric == analysis.TTFT && res.SLO.TTFTP99Ms > 0:
				slo = res.SLO.TTFTP99Ms
			case s.metric == analysis.TPOT && res.SLO.TPOTP99Ms > 0:
				slo = res.SLO.TPOTP99Ms
			}
		}
		if err := writeXYFile(filepath.Join(outDir, f.File), title, res.XAxis, xTicks, m, name, lines, marks, slo); err != nil {
			return err
		}
		d.fig(f)
	}
	return nil
}

// cdfGrid draws each cell's TTFT and TPOT CDFs (from the percentiles its
// compare recorded), every run overlaid, as a grid of small figures.
func cdfGrid(d *doc, res *SweepResult, outDir string) error {
	var figs []figure
	for _, g := range res.Groups {
		for ci, c := range g.Cells {
			for _, k := range []string{analysis.TTFT, analysis.TPOT} {
				var lines []CDFLine
				for _, rr := range append(append([]RunResult{}, c.Runs...), c.Reruns...) {
					q := rr.Quantiles[k]
					if len(q) == 0 {
						continue
					}
					var sorted []float64
					for _, v := range q {
						if !math.IsNaN(float64(v)) {
							sorted = append(sorted, float64(v))
						}
					}
					lines = append(lines, CDFLine{Label: rr.Label, Sorted: sorted})
				}
				if len(lines) == 0 {
					continue
				}
				m := analysis.Info(k)
				title := fmt.Sprintf("%s, %s=%s", m.Name, res.X, g.XLabel[ci])
				if g.Name != "" {
					title += " (" + g.Name + ")"
				}
				if g.Trained[ci] {
					title += " (trained)"
				}
				f := figure{File: fmt.Sprintf("figs/cdf_%s_%s.png", slug(c.Instance), k), Title: title,
					Caption: "CDF from the runs' 101 percentiles (n in the legend counts them, not requests)."}
				file, err := os.Create(filepath.Join(outDir, f.File))
				if err != nil {
					return err
				}
				err = WriteCDF(file, title, m, lines)
				if cerr := file.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				figs = append(figs, f)
			}
		}
	}
	if len(figs) == 0 {
		return nil
	}
	d.h("CDFs per cell")
	d.p("TTFT (left) and TPOT (right) of every cell, every run overlaid (the reference's reruns too), drawn from the percentiles each compare recorded.")
	d.grid(figs, 2)
	return nil
}
