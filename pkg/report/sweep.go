package report

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/stage"
	chart "github.com/wcharczuk/go-chart/v2"
)

// SweepKind is the `report` stage: a fan-in over every cell of a compare
// stage → latency and error against the sweep variable, and capacity at an
// SLO, real next to each simulator.
type SweepKind struct{ stage.Base }

// SweepParams are the `with:` of a report stage.
type SweepParams struct {
	// X is the matrix variable on the x axis (for example rate).
	X string `json:"x"`
	// XLabel titles the x axis, with its unit (default: "<x> (req/s)" for
	// a variable named like a rate, else x).
	XLabel string `json:"x_label,omitempty"`
	SLO    *SLO   `json:"slo,omitempty"`
	Title  string `json:"title,omitempty"`
}

// SLO bounds the latency a deployment promises; capacity is the highest x
// that meets every bound given.
type SLO struct {
	TTFTP99Ms float64 `json:"ttft_p99_ms,omitempty"`
	TPOTP99Ms float64 `json:"tpot_p99_ms,omitempty"`
}

func (SweepKind) Name() string    { return "report" }
func (SweepKind) Version() string { return "1" }

func decodeSweep(params map[string]any) (*SweepParams, error) {
	var p SweepParams
	if err := stage.DecodeParams(params, &p); err != nil {
		return nil, err
	}
	if p.X == "" {
		return nil, &stage.ParamError{Path: "x", Msg: "required: name the matrix variable to plot against (for example rate)"}
	}
	if p.SLO != nil {
		if p.SLO.TTFTP99Ms < 0 || p.SLO.TPOTP99Ms < 0 {
			return nil, &stage.ParamError{Path: "slo", Msg: "bounds must be positive milliseconds"}
		}
		if p.SLO.TTFTP99Ms == 0 && p.SLO.TPOTP99Ms == 0 {
			return nil, &stage.ParamError{Path: "slo", Msg: "give ttft_p99_ms and/or tpot_p99_ms, or leave slo out"}
		}
	}
	return &p, nil
}

// CheckNeeds implements stage.NeedsChecker: x must be a matrix variable,
// so a typo fails at load time with its line, not after the sweep ran.
func (SweepKind) CheckNeeds(params map[string]any, _ []string, matrix map[string][]any) error {
	p, err := decodeSweep(params)
	if _, ok := matrix[p.X]; err != nil || ok {
		return nil // CheckParams reports a decode error
	}
	if len(matrix) == 0 {
		return &stage.ParamError{Path: "x", Msg: fmt.Sprintf("%q: the experiment has no matrix; a report plots against a swept matrix variable (add matrix: {%s: [...]})", p.X, p.X)}
	}
	return &stage.ParamError{Path: "x", Msg: fmt.Sprintf("%q is not a matrix variable (the matrix has %s); set with.x to one of them", p.X, strings.Join(sortedKeys(matrix), ", "))}
}

// CheckParams validates `with:`.
func (SweepKind) CheckParams(params map[string]any) error {
	_, err := decodeSweep(params)
	return err
}

// Run reads every compare.json it is given and writes the sweep report.
func (SweepKind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decodeSweep(spec.Params)
	if err != nil {
		return err
	}
	var cells []*Result
	var errs []error
	for _, need := range sortedKeys(spec.Inputs) {
		for _, in := range spec.Inputs[need] {
			r, err := ReadResult(in.Dir)
			if err != nil {
				errs = append(errs, fmt.Errorf("report %s: input %s: %w", spec.Instance, in.Instance, err))
				continue
			}
			if len(r.Matrix) == 0 {
				r.Matrix = in.Matrix
			}
			if r.Instance == "" {
				r.Instance = in.Instance
			}
			cells = append(cells, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	title := p.Title
	if title == "" {
		title = "Sweep report: " + spec.Experiment
	}
	_, err = Sweep(ctx, SweepInput{Title: title, X: p.X, SLO: p.SLO, Cells: cells, Instance: spec.Instance, Key: spec.Key}, spec.OutDir)
	return err
}

var sweepFiles = []string{"summary.md", "report.html", "tables/errors.csv", "tables/latency.csv"}

// Validate checks every output is present and non-empty.
func (SweepKind) Validate(spec *stage.Spec) error {
	files := append([]string{}, sweepFiles...)
	p, err := decodeSweep(spec.Params)
	if err != nil {
		return err
	}
	if p.SLO != nil {
		files = append(files, "tables/capacity.csv")
	}
	figs, _ := filepath.Glob(filepath.Join(spec.OutDir, "figs", "*.png"))
	if len(figs) == 0 {
		return fmt.Errorf("output figs/*.png missing")
	}
	for _, f := range figs {
		rel, _ := filepath.Rel(spec.OutDir, f)
		files = append(files, rel)
	}
	return nonEmpty(spec.OutDir, files)
}

// SweepInput is a sweep report's inputs.
type SweepInput struct {
	Title    string
	X        string
	SLO      *SLO
	Cells    []*Result
	Instance string
	Key      string
}

// Group is the cells sharing every matrix value but x, sorted by x.
type Group struct {
	Name   string // "policy=vllm"; "" when x is the only dimension
	Cells  []*Result
	X      []float64 // numeric x per cell (cell index when x is categorical)
	XLabel []string
	// Capacity per run name: the highest x meeting the SLO (NaN: none).
	Capacity map[string]float64
}

type seriesDef struct {
	metric, stat string
}

var sweepSeries = []seriesDef{
	{analysis.TTFT, analysis.StatP50}, {analysis.TTFT, analysis.StatP99},
	{analysis.TPOT, analysis.StatP50}, {analysis.TPOT, analysis.StatP99},
}

// Sweep writes the sweep report into outDir and returns its groups.
func Sweep(ctx context.Context, in SweepInput, outDir string) ([]*Group, error) {
	if len(in.Cells) == 0 {
		return nil, fmt.Errorf("report: no compare outputs; the report needs `{stage: <compare stage>, all: true}`")
	}
	groups, categorical, err := groupCells(in.Cells, in.X)
	if err != nil {
		return nil, err
	}
	runs := runOrder(in.Cells)
	if err := os.MkdirAll(filepath.Join(outDir, "figs"), 0o755); err != nil {
		return nil, err
	}
	d := &doc{Title: in.Title}
	first := in.Cells[0]
	var cands []string
	for _, r := range runs[1:] {
		cands = append(cands, fmt.Sprintf("**%s** (`%s`)", r.label, r.name))
	}
	d.p("Reference: **%s** (`%s`). Candidates: %s. %d cells over `%s`, in %d group(s).",
		runs[0].label, runs[0].name, strings.Join(cands, ", "), len(in.Cells), in.X, len(groups))
	if in.SLO != nil {
		d.p("SLO: %s. Capacity is the highest `%s` tested whose statistics meet every bound.", in.SLO.describe(), in.X)
	}

	verdictAt := len(d.Blocks)
	var latRows, errRows, capRows [][]string
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if g.Name != "" {
			d.h("Group " + g.Name)
		} else {
			d.h("Latency against " + in.X)
		}
		prefix := ""
		if g.Name != "" {
			prefix = slug(g.Name) + "_"
		}
		// Latency table: one row per x, per run the P50/P99 TTFT and TPOT.
		lt := table{Head: []string{in.X}}
		for _, r := range runs {
			for _, s := range sweepSeries {
				lt.Head = append(lt.Head, fmt.Sprintf("%s %s %s", r.label, strings.ToUpper(s.stat), analysis.Info(s.metric).Name))
			}
		}
		for ci, c := range g.Cells {
			row := []string{g.XLabel[ci]}
			for _, r := range runs {
				rr := c.Run(r.name)
				for _, s := range sweepSeries {
					v := math.NaN()
					if rr != nil {
						v = rr.Stats[s.metric].Get(s.stat)
					}
					row = append(row, fmtVal(v))
				}
				if rr == nil {
					continue
				}
				for _, m := range analysis.LatencyMetrics {
					for _, st := range analysis.StatNames {
						latRows = append(latRows, []string{c.Instance, g.Name, g.XLabel[ci], r.name, m.Key, st, csvNum(rr.Stats[m.Key].Get(st))})
					}
				}
			}
			lt.Rows = append(lt.Rows, row)
			for _, cand := range c.Candidates {
				for _, m := range analysis.LatencyMetrics {
					for _, st := range analysis.StatNames {
						errRows = append(errRows, []string{c.Instance, g.Name, g.XLabel[ci], cand.Name, m.Key, st, csvNum(float64(cand.RelErrors[m.Key][st]))})
					}
				}
			}
		}
		d.p("Latencies in ms; quantiles by %s.", analysis.QuantileMethod)
		d.table(lt)

		// Error table: per cell and candidate, the P50/P99 errors.
		et := table{Head: []string{in.X, "candidate"}}
		for _, s := range sweepSeries {
			et.Head = append(et.Head, fmt.Sprintf("%s %s error", strings.ToUpper(s.stat), analysis.Info(s.metric).Name))
		}
		et.Head = append(et.Head, "KS TTFT", "KS TPOT")
		for ci, c := range g.Cells {
			for _, cand := range c.Candidates {
				row := []string{g.XLabel[ci], cand.Label}
				for _, s := range sweepSeries {
					row = append(row, fmtSignedPct(float64(cand.RelErrors[s.metric][s.stat])))
				}
				row = append(row, fmtKS(cand.Distances[analysis.TTFT].KS), fmtKS(cand.Distances[analysis.TPOT].KS))
				et.Rows = append(et.Rows, row)
			}
		}
		d.p("Signed relative errors (candidate - reference) / reference; negative means the simulator under-predicts.")
		d.table(et)

		var xTicks []chart.Tick
		if categorical {
			for i, l := range g.XLabel {
				xTicks = append(xTicks, chart.Tick{Value: g.X[i], Label: l})
			}
		}
		for _, s := range sweepSeries {
			m := analysis.Info(s.metric)
			var lines []XYLine
			for _, r := range runs {
				l := XYLine{Label: r.label}
				for ci, c := range g.Cells {
					if rr := c.Run(r.name); rr != nil {
						l.X = append(l.X, g.X[ci])
						l.Y = append(l.Y, rr.Stats[s.metric].Get(s.stat))
					}
				}
				lines = append(lines, l)
			}
			name := fmt.Sprintf("%s %s", strings.ToUpper(s.stat), m.Name)
			title := name + " vs " + in.X
			if g.Name != "" {
				title += " (" + g.Name + ")"
			}
			f := figure{File: fmt.Sprintf("figs/%s%s_%s_vs_%s.png", prefix, s.metric, s.stat, slug(in.X)), Title: title,
				Caption: fmt.Sprintf("%s of %s per cell, one line per run. %s.", strings.ToUpper(s.stat), m.Name, upperFirst(m.Definition))}
			slo := math.NaN()
			if in.SLO != nil && s.stat == analysis.StatP99 {
				switch {
				case s.metric == analysis.TTFT && in.SLO.TTFTP99Ms > 0:
					slo = in.SLO.TTFTP99Ms
				case s.metric == analysis.TPOT && in.SLO.TPOTP99Ms > 0:
					slo = in.SLO.TPOTP99Ms
				}
			}
			if err := writeXYFile(filepath.Join(outDir, f.File), title, in.X, xTicks, m, name, lines, slo); err != nil {
				return nil, err
			}
			d.fig(f)
		}

		if in.SLO != nil {
			g.Capacity = map[string]float64{}
			ct := table{Head: []string{"run", "capacity (" + in.X + ")", "error vs " + runs[0].label, "note"}}
			for _, r := range runs {
				capX, idx := capacity(g, r.name, in.SLO)
				g.Capacity[r.name] = capX
				note := ""
				switch {
				case idx < 0:
					note = "SLO missed at every " + in.X + " tested"
				case idx == len(g.Cells)-1:
					note = "met at the highest " + in.X + " tested: capacity is at least this"
				}
				capLabel := "none"
				if idx >= 0 {
					capLabel = g.XLabel[idx]
				}
				rel := math.NaN()
				if !categorical && r.name != runs[0].name {
					rel = analysis.RelError(g.Capacity[runs[0].name], capX)
				}
				errText := "—"
				if r.name != runs[0].name {
					errText = fmtSignedPct(rel)
				}
				ct.Rows = append(ct.Rows, []string{r.label, capLabel, errText, note})
				capRows = append(capRows, []string{g.Name, r.name, capLabel, csvNum(rel), in.SLO.describe()})
			}
			d.p("Capacity at the SLO (%s):", in.SLO.describe())
			d.table(ct)
		}
	}

	v := []block{{Heading: "Verdict"}, {List: sweepVerdict(groups, runs, in)}}
	d.Blocks = append(d.Blocks[:verdictAt], append(v, d.Blocks[verdictAt:]...)...)

	d.h("Definitions")
	var defs []string
	for _, m := range analysis.LatencyMetrics {
		defs = append(defs, fmt.Sprintf("**%s** (%s): %s.", m.Name, m.Unit, m.Definition))
	}
	defs = append(defs, "**Quantiles**: "+analysis.QuantileMethod+".",
		"**Relative error** = (candidate - reference) / reference. **KS** = sup |F_ref - F_cand| of the empirical CDFs.",
		"Each cell's own summary.md and report.html (in its compare stage folder) hold the full tables, CDFs and provenance.")
	d.list(defs)
	d.h("Provenance")
	pt := table{Head: []string{"cell", "compare stage key", "workload digest"}}
	for _, g := range groups {
		for _, c := range g.Cells {
			pt.Rows = append(pt.Rows, []string{c.Instance, shortKey(c.Key), shortKey(c.WorkloadDigest)})
		}
	}
	d.table(pt)
	for _, r := range first.Runs {
		if gpu := gpuName(r.Hardware); gpu != "" {
			d.p("Run `%s` (%s, %s): GPU %s, engine %s.", r.Name, r.Label, r.RunType, gpu, cellString(r.Engine))
		} else {
			d.p("Run `%s` (%s, %s): engine %s.", r.Name, r.Label, r.RunType, cellString(r.Engine))
		}
	}

	tables := filepath.Join(outDir, "tables")
	if err := writeCSV(filepath.Join(tables, "latency.csv"), []string{"cell", "group", in.X, "run", "metric", "stat", "value_ms"}, latRows); err != nil {
		return nil, err
	}
	if err := writeCSV(filepath.Join(tables, "errors.csv"), []string{"cell", "group", in.X, "candidate", "metric", "stat", "rel_error"}, errRows); err != nil {
		return nil, err
	}
	if in.SLO != nil {
		if err := writeCSV(filepath.Join(tables, "capacity.csv"), []string{"group", "run", "capacity_" + in.X, "rel_error", "slo"}, capRows); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(outDir, "summary.md"), []byte(d.markdown()), 0o644); err != nil {
		return nil, err
	}
	html, err := d.html(outDir)
	if err != nil {
		return nil, err
	}
	return groups, os.WriteFile(filepath.Join(outDir, "report.html"), html, 0o644)
}

func writeXYFile(path, title, xName string, xTicks []chart.Tick, m analysis.MetricInfo, yName string, lines []XYLine, slo float64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = WriteXY(f, title, xName, xTicks, m, yName, lines, slo)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *SLO) describe() string {
	var parts []string
	if s.TTFTP99Ms > 0 {
		parts = append(parts, fmt.Sprintf("P99 TTFT ≤ %s ms", formatNum(s.TTFTP99Ms)))
	}
	if s.TPOTP99Ms > 0 {
		parts = append(parts, fmt.Sprintf("P99 TPOT ≤ %s ms", formatNum(s.TPOTP99Ms)))
	}
	return strings.Join(parts, " and ")
}

// capacity returns the highest x (and its cell index) at which run meets
// the SLO; NaN and -1 when it meets it nowhere. It is the highest passing x,
// not the first failure, so a noisy cell below does not hide capacity.
func capacity(g *Group, run string, slo *SLO) (float64, int) {
	best := -1
	for i, c := range g.Cells {
		rr := c.Run(run)
		if rr == nil {
			continue
		}
		ok := true
		if slo.TTFTP99Ms > 0 {
			v := rr.Stats[analysis.TTFT].P99
			ok = ok && !math.IsNaN(v) && v <= slo.TTFTP99Ms
		}
		if slo.TPOTP99Ms > 0 {
			v := rr.Stats[analysis.TPOT].P99
			ok = ok && !math.IsNaN(v) && v <= slo.TPOTP99Ms
		}
		if ok {
			best = i
		}
	}
	if best < 0 {
		return math.NaN(), -1
	}
	return g.X[best], best
}

type runRef struct{ name, label string }

// runOrder lists runs as the first cell has them (reference first), then
// any run only later cells have.
func runOrder(cells []*Result) []runRef {
	var out []runRef
	seen := map[string]bool{}
	for _, c := range cells {
		for _, r := range c.Runs {
			if !seen[r.Name] {
				seen[r.Name] = true
				out = append(out, runRef{r.Name, r.Label})
			}
		}
	}
	return out
}

// groupCells splits cells by every matrix value except x and sorts each
// group by x: numerically when every x is a number, else in input order.
func groupCells(cells []*Result, x string) ([]*Group, bool, error) {
	categorical := false
	for _, c := range cells {
		v, ok := c.Matrix[x]
		if !ok {
			return nil, false, fmt.Errorf("report: compare cell %q has no matrix value %q (its cell: %s); set with.x to a matrix variable the compare stage uses",
				c.Instance, x, orDash(cellString(c.Matrix)))
		}
		if _, ok := toFloat(v); !ok {
			categorical = true
		}
	}
	byName := map[string]*Group{}
	var groups []*Group
	for _, c := range cells {
		rest := map[string]any{}
		for k, v := range c.Matrix {
			if k != x {
				rest[k] = v
			}
		}
		name := cellString(rest)
		g, ok := byName[name]
		if !ok {
			g = &Group{Name: name}
			byName[name] = g
			groups = append(groups, g)
		}
		g.Cells = append(g.Cells, c)
	}
	for _, g := range groups {
		if !categorical {
			sort.SliceStable(g.Cells, func(i, j int) bool {
				a, _ := toFloat(g.Cells[i].Matrix[x])
				b, _ := toFloat(g.Cells[j].Matrix[x])
				return a < b
			})
		}
		for i, c := range g.Cells {
			v := c.Matrix[x]
			f, ok := toFloat(v)
			if categorical || !ok {
				f = float64(i)
			}
			g.X = append(g.X, f)
			g.XLabel = append(g.XLabel, fmt.Sprint(v))
		}
		for i := 1; i < len(g.X); i++ {
			if !categorical && g.X[i] == g.X[i-1] {
				return nil, false, fmt.Errorf("report: cells %q and %q have the same %s=%v in group %q; add the other matrix variable to the compare stage",
					g.Cells[i-1].Instance, g.Cells[i].Instance, x, g.XLabel[i], g.Name)
			}
		}
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	return groups, categorical, nil
}

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case string:
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil
	}
	return 0, false
}

var slugRe = regexp.MustCompile(`[^A-Za-z0-9.]+`)

func slug(s string) string {
	return strings.Trim(slugRe.ReplaceAllString(s, "-"), "-")
}

// sweepVerdict says, per candidate and group, the range of its P50/P99
// errors over the sweep and, with an SLO, how far off its capacity is.
func sweepVerdict(groups []*Group, runs []runRef, in SweepInput) []string {
	var out []string
	for _, g := range groups {
		where := ""
		if g.Name != "" {
			where = " (" + g.Name + ")"
		}
		for _, r := range runs[1:] {
			var parts []string
			for _, s := range sweepSeries {
				lo, hi := math.Inf(1), math.Inf(-1)
				var loAt, hiAt string
				for ci, c := range g.Cells {
					for _, cand := range c.Candidates {
						if cand.Name != r.name {
							continue
						}
						e := float64(cand.RelErrors[s.metric][s.stat])
						if math.IsNaN(e) {
							continue
						}
						if e < lo {
							lo, loAt = e, g.XLabel[ci]
						}
						if e > hi {
							hi, hiAt = e, g.XLabel[ci]
						}
					}
				}
				if math.IsInf(lo, 0) {
					continue
				}
				name := strings.ToUpper(s.stat) + " " + analysis.Info(s.metric).Name
				if fmtSignedPct(lo) == fmtSignedPct(hi) {
					parts = append(parts, fmt.Sprintf("%s %s", name, fmtSignedPct(lo)))
				} else {
					parts = append(parts, fmt.Sprintf("%s %s (%s=%s) to %s (%s=%s)", name, fmtSignedPct(lo), in.X, loAt, fmtSignedPct(hi), in.X, hiAt))
				}
			}
			line := fmt.Sprintf("**%s**%s vs %s: %s.", r.label, where, runs[0].label, strings.Join(parts, "; "))
			if g.Capacity != nil {
				ref, cand := g.Capacity[runs[0].name], g.Capacity[r.name]
				switch {
				case math.IsNaN(ref) || math.IsNaN(cand):
					line += fmt.Sprintf(" Capacity at the SLO: %s %s, %s %s.", runs[0].label, capText(ref), r.label, capText(cand))
				default:
					line += fmt.Sprintf(" Capacity at the SLO: %s=%s predicted vs %s=%s real (%s).", in.X, formatNum(cand), in.X, formatNum(ref), fmtSignedPct(analysis.RelError(ref, cand)))
				}
			}
			out = append(out, line)
		}
	}
	return out
}

func capText(v float64) string {
	if math.IsNaN(v) {
		return "none"
	}
	return formatNum(v)
}
