package report

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/gsim-dev/gsim/pkg/analysis"
)

// Files a sweep report writes besides summary.md, report.html, tables/ and
// figs/: its one-line verdict (read by `gsim run`'s end-of-run message) and
// its numbers.
const (
	VerdictFile = "verdict.txt"
	SweepFile   = "sweep.json"
)

// SweepResult is everything a sweep report says, computed before anything
// is drawn or written.
type SweepResult struct {
	SchemaVersion int      `json:"schema_version"`
	Title         string   `json:"title"`
	X             string   `json:"x"`
	XAxis         string   `json:"x_axis"`
	SLO           *SLO     `json:"slo,omitempty"`
	Runs          []runRef `json:"runs"`
	Groups        []*Group `json:"groups"`
	// Verdict is one line; Lines the verdict's bullets (markdown).
	Verdict string   `json:"verdict"`
	Lines   []string `json:"verdict_lines"`
	// Cells lists every compare cell with its verdict and its report.
	Cells []SweepCell `json:"cells"`

	categorical bool
	in          SweepInput
}

// SweepCell is one compare cell as the sweep report lists it.
type SweepCell struct {
	Instance string `json:"instance"`
	Group    string `json:"group"`
	X        string `json:"x"`
	Trained  bool   `json:"trained"`
	Verdict  string `json:"verdict"`
	// Report is the cell's report.html relative to this report's folder,
	// through the experiment's friendly links (tmp/runs/<experiment>/).
	Report string `json:"report"`
}

// SweepResultVersion is sweep.json's schema_version.
const SweepResultVersion = 1

// Sweep computes the sweep report and writes it into outDir.
func Sweep(ctx context.Context, in SweepInput, outDir string) (*SweepResult, error) {
	res, err := computeSweep(in)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, renderSweep(ctx, res, outDir)
}

// xAxisTitle is the x axis's name with its unit.
func xAxisTitle(x, label string) string {
	if label != "" {
		return label
	}
	if strings.Contains(strings.ToLower(x), "rate") {
		return x + " (req/s)"
	}
	return x
}

func computeSweep(in SweepInput) (*SweepResult, error) {
	if len(in.Cells) == 0 {
		return nil, fmt.Errorf("report: no compare outputs; the report needs `{stage: <compare stage>, all: true}`")
	}
	groups, categorical, err := groupCells(in.Cells, in.X)
	if err != nil {
		return nil, err
	}
	res := &SweepResult{SchemaVersion: SweepResultVersion, Title: in.Title, X: in.X, XAxis: xAxisTitle(in.X, in.XLabel),
		SLO: in.SLO, Runs: runOrder(in.Cells), Groups: groups, categorical: categorical, in: in}
	for _, g := range groups {
		for ci, c := range g.Cells {
			tr := trainedCell(c, in.Trained)
			g.Trained = append(g.Trained, tr)
			res.Cells = append(res.Cells, SweepCell{Instance: c.Instance, Group: g.Name, X: g.XLabel[ci], Trained: tr,
				Verdict: c.Verdict, Report: cellReportLink(c.Instance)})
		}
		if in.SLO != nil {
			g.Capacity, g.Breaks = map[string]float64{}, map[string]int{}
			for _, r := range res.Runs {
				g.Capacity[r.Name], _ = capacity(g, r.Name, in.SLO)
				g.Breaks[r.Name] = firstBreak(g, r.Name, in.SLO)
			}
		}
	}
	res.Lines = sweepVerdict(res)
	res.Verdict = sweepOneLine(res)
	return res, nil
}

// trainedCell reports whether the cell's reference run, or a rerun of it,
// is one the fit trained on.
func trainedCell(c *Result, trained map[string]bool) bool {
	if len(trained) == 0 || len(c.Runs) == 0 {
		return false
	}
	if trained[c.Runs[0].Instance] {
		return true
	}
	for _, r := range c.Reruns {
		if trained[r.Instance] {
			return true
		}
	}
	return false
}

// cellReportLink is the compare cell's report.html beside this report in
// the experiment's friendly links (tmp/runs/<experiment>/<instance>/).
func cellReportLink(instance string) string {
	if instance == "" {
		return ""
	}
	r := strings.NewReplacer("[", "%5B", "]", "%5D", " ", "%20", ",", "%2C")
	return "../" + r.Replace(instance) + "/report.html"
}

// sloMet reports whether run's statistics in a cell meet the SLO.
func sloMet(c *Result, run string, slo *SLO) (met, ok bool) {
	rr := c.Run(run)
	if rr == nil {
		return false, false
	}
	met = true
	if slo.TTFTP99Ms > 0 {
		v := rr.Stats[analysis.TTFT].P99
		met = met && !math.IsNaN(v) && v <= slo.TTFTP99Ms
	}
	if slo.TPOTP99Ms > 0 {
		v := rr.Stats[analysis.TPOT].P99
		met = met && !math.IsNaN(v) && v <= slo.TPOTP99Ms
	}
	return met, true
}

// capacity returns the highest x (and its cell index) at which run meets
// the SLO; NaN and -1 when it meets it nowhere. It is the highest passing x,
// not the first failure, so a noisy cell below does not hide capacity.
func capacity(g *Group, run string, slo *SLO) (float64, int) {
	best := -1
	for i, c := range g.Cells {
		if met, ok := sloMet(c, run, slo); ok && met {
			best = i
		}
	}
	if best < 0 {
		return math.NaN(), -1
	}
	return g.X[best], best
}

// firstBreak is the index of the first x at which run misses the SLO, -1
// when it meets it everywhere it was measured.
func firstBreak(g *Group, run string, slo *SLO) int {
	for i, c := range g.Cells {
		if met, ok := sloMet(c, run, slo); ok && !met {
			return i
		}
	}
	return -1
}

// breakText names where a run breaks the SLO.
func breakText(g *Group, idx int, x string) string {
	if idx < 0 {
		if len(g.XLabel) == 0 {
			return "never"
		}
		return fmt.Sprintf("not up to %s=%s", x, g.XLabel[len(g.XLabel)-1])
	}
	return fmt.Sprintf("%s=%s", x, g.XLabel[idx])
}

// breakSteps is how many grid steps apart two runs break the SLO (a run
// that never breaks counts as breaking one step past the grid).
func breakSteps(g *Group, a, b int) int {
	n := len(g.Cells)
	if a < 0 {
		a = n
	}
	if b < 0 {
		b = n
	}
	d := a - b
	if d < 0 {
		d = -d
	}
	return d
}

// sweepVerdict says, per candidate and group, how often it was
// indistinguishable from a rerun, the range of its errors over the sweep
// and, with an SLO, where it breaks it against the real engine.
func sweepVerdict(res *SweepResult) []string {
	var out []string
	ref := res.Runs[0]
	for _, g := range res.Groups {
		where := ""
		if g.Name != "" {
			where = " (" + g.Name + ")"
		}
		for _, r := range res.Runs[1:] {
			var parts []string
			held, indist := 0, 0
			var inCells, outCells []string
			for ci, c := range g.Cells {
				for _, cand := range c.Candidates {
					if cand.Name != r.Name || cand.Verdict == nil || cand.Verdict.Held == 0 {
						continue
					}
					held++
					if cand.Verdict.Indistinguishable {
						indist++
						inCells = append(inCells, g.XLabel[ci])
					} else {
						outCells = append(outCells, g.XLabel[ci])
					}
				}
			}
			for _, s := range sweepSeries {
				lo, hi := math.Inf(1), math.Inf(-1)
				var loAt, hiAt string
				for ci, c := range g.Cells {
					for _, cand := range c.Candidates {
						if cand.Name != r.Name {
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
					parts = append(parts, fmt.Sprintf("%s %s (%s=%s) to %s (%s=%s)", name, fmtSignedPct(lo), res.X, loAt, fmtSignedPct(hi), res.X, hiAt))
				}
			}
			line := fmt.Sprintf("**%s**%s vs %s:", r.Label, where, ref.Label)
			if held > 0 {
				line += fmt.Sprintf(" indistinguishable from a rerun in %d of %d cells", indist, held)
				if len(inCells) > 0 {
					line += fmt.Sprintf(" (%s=%s)", res.X, strings.Join(inCells, ", "))
				}
				line += ";"
			}
			line += " " + strings.Join(parts, "; ") + "."
			if g.Breaks != nil {
				rb, cb := g.Breaks[ref.Name], g.Breaks[r.Name]
				steps := breakSteps(g, rb, cb)
				within := "within one grid step"
				if steps > 1 {
					within = fmt.Sprintf("%d grid steps off", steps)
				}
				line += fmt.Sprintf(" SLO breaks: %s, %s %s (%s).", breakText(g, cb, res.X), ref.Label, breakText(g, rb, res.X), within)
			}
			out = append(out, line)
		}
	}
	return out
}

// sweepOneLine is the report's verdict in one line of plain text.
func sweepOneLine(res *SweepResult) string {
	var parts []string
	for _, r := range res.Runs[1:] {
		held, indist, worstSteps := 0, 0, 0
		for _, g := range res.Groups {
			for _, c := range g.Cells {
				for _, cand := range c.Candidates {
					if cand.Name == r.Name && cand.Verdict != nil && cand.Verdict.Held > 0 {
						held++
						if cand.Verdict.Indistinguishable {
							indist++
						}
					}
				}
			}
			if g.Breaks != nil {
				worstSteps = max(worstSteps, breakSteps(g, g.Breaks[res.Runs[0].Name], g.Breaks[r.Name]))
			}
		}
		p := r.Label + ": "
		if held > 0 {
			p += fmt.Sprintf("indistinguishable from a rerun in %d of %d cells", indist, held)
		} else {
			p += "no rerun band (repeat the reference stage to get one)"
		}
		if res.SLO != nil {
			if worstSteps <= 1 {
				p += ", SLO breaks within one grid step of real"
			} else {
				p += fmt.Sprintf(", SLO breaks %d grid steps from real", worstSteps)
			}
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}
