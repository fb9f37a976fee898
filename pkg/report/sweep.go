package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gsim-dev/gsim/internal/lazyre"
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
func (SweepKind) Version() string { return "2" }

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

// Run reads every compare.json it is given (and the training cells of a
// fit input, which it marks) and writes the sweep report.
func (SweepKind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decodeSweep(spec.Params)
	if err != nil {
		return err
	}
	var cells []*Result
	var errs []error
	trained := map[string]bool{}
	for _, need := range sortedKeys(spec.Inputs) {
		for _, in := range spec.Inputs[need] {
			if names, ok, err := fitTraining(in.Dir); ok || err != nil {
				if err != nil {
					errs = append(errs, fmt.Errorf("report %s: input %s: %w", spec.Instance, in.Instance, err))
				}
				for _, n := range names {
					trained[n] = true
				}
				continue
			}
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
	_, err = Sweep(ctx, SweepInput{Title: title, X: p.X, XLabel: p.XLabel, SLO: p.SLO, Cells: cells, Trained: trained,
		Instance: spec.Instance, Key: spec.Key}, spec.OutDir)
	return err
}

// fitTraining reads the cells a fit stage trained on (step_model.json's
// training_cells), when dir is a fit output; ok is false otherwise.
func fitTraining(dir string) (names []string, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "step_model.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	var m struct {
		Training []struct {
			Instance string `json:"instance"`
		} `json:"training_cells"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, true, fmt.Errorf("step_model.json: %w", err)
	}
	for _, c := range m.Training {
		names = append(names, c.Instance)
	}
	return names, true, nil
}

var sweepFiles = []string{"summary.md", "report.html", "tables/errors.csv", "tables/latency.csv", VerdictFile, SweepFile}

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
	Title  string
	X      string
	XLabel string
	SLO    *SLO
	Cells  []*Result
	// Trained are the real-run instances a fit trained on; cells whose
	// reference (or a rerun of it) is one of them are marked.
	Trained  map[string]bool
	Instance string
	Key      string
}

// Group is the cells sharing every matrix value but x, sorted by x.
type Group struct {
	Name   string    `json:"name"` // "policy=vllm"; "" when x is the only dimension
	Cells  []*Result `json:"-"`
	X      []float64 `json:"x"` // numeric x per cell (cell index when x is categorical)
	XLabel []string  `json:"x_labels"`
	// Trained marks the cells the fit trained on.
	Trained []bool `json:"trained"`
	// Capacity per run name: the highest x meeting the SLO (NaN: none).
	Capacity map[string]float64 `json:"-"`
	// Breaks per run name: the index of the first x whose statistics miss
	// the SLO (-1: none does).
	Breaks map[string]int `json:"slo_breaks_at,omitempty"`
}

type seriesDef struct {
	metric, stat string
}

// sweepSeries are the statistics plotted and tabulated against x.
var sweepSeries = []seriesDef{
	{analysis.TTFT, analysis.StatP50}, {analysis.TTFT, analysis.StatP90}, {analysis.TTFT, analysis.StatP99},
	{analysis.TPOT, analysis.StatP50}, {analysis.TPOT, analysis.StatP90}, {analysis.TPOT, analysis.StatP99},
}

func writeXYFile(path, title, xName string, xTicks []chart.Tick, m analysis.MetricInfo, yName string, lines []XYLine, marks []XYMark, slo float64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = WriteXYMarked(f, title, xName, xTicks, m, yName, lines, marks, slo)
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

type runRef struct {
	Name  string `json:"name"`
	Label string `json:"label"`
}

// runOrder lists runs as the first cell has them (reference first), then
// any run only later cells have.
func runOrder(cells []*Result) []runRef {
	var out []runRef
	seen := map[string]bool{}
	for _, c := range cells {
		for _, r := range c.Runs {
			if !seen[r.Name] {
				seen[r.Name] = true
				out = append(out, runRef{Name: r.Name, Label: r.Label})
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

var slugRe = lazyre.New(`[^A-Za-z0-9.]+`)

func slug(s string) string {
	return strings.Trim(slugRe.ReplaceAllString(s, "-"), "-")
}
