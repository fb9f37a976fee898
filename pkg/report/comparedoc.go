package report

import (
	"fmt"
	"math"
	"strings"

	"github.com/gsim-dev/gsim/pkg/analysis"
)

// closeEnough is the relative error below which the verdict says "matches".
const closeEnough = 0.02

// maxFailedListed bounds the failed-request table in the documents;
// tables/failed.csv lists them all.
const maxFailedListed = 50

func shortKey(k string) string {
	if len(k) > 12 {
		return k[:12]
	}
	if k == "" {
		return "—"
	}
	return k
}

func cellString(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func compareDoc(res *Result, figs []figure) *doc {
	d := &doc{Title: "Comparison"}
	switch {
	case res.Title != "":
		d.Title = res.Title
	case res.Instance != "":
		d.Title = "Comparison: " + res.Instance
	}
	ref := res.Runs[0]
	var cands []string
	for _, c := range res.Candidates {
		cands = append(cands, fmt.Sprintf("**%s** (`%s`)", c.Label, c.Name))
	}
	d.p("Reference: **%s** (`%s`, %s). Candidates: %s.", ref.Label, ref.Name, ref.RunType, strings.Join(cands, ", "))
	if c := cellString(res.Matrix); c != "" {
		d.p("Matrix cell: `%s`.", c)
	}
	if w := res.Workload; w != nil {
		d.p("Workload `%s` (%s, %d requests), digest `%s`; every run was checked against it (digest, request ids, per-request token counts).", w.ID, w.Model, w.NumRequests, res.WorkloadDigest)
	} else {
		d.p("Workload digest `%s`; every run was checked against the reference (digest, request ids, per-request token counts).", res.WorkloadDigest)
	}

	d.h("Verdict")
	d.list(verdict(res))
	if res.Noise != nil {
		d.p("The noise band is the real engine's own spread: for each statistic, the smallest and largest value over the reference and its %d rerun(s) of the same workload (separate engine processes), widened to at least ±%.0f%% of the reference. A candidate's statistic inside it is marked ✓ (within noise), outside ✗. Distances are also given as a ratio to a rerun's distance to the reference (the mean over reruns). The rule: P50 and P90 of TTFT, TPOT and E2E within noise, P99 too where every run has at least %d requests, and W1 at most %.2f× a rerun's.",
			res.Noise.Runs-1, 100*analysis.TolFloor, analysis.MinTailRequests, analysis.MaxDistanceRatio)
	} else {
		d.p("No reruns of the reference: errors have no noise band to be judged against. Give the reference stage `repeat: 2` (or list recorded reruns under `with.reruns`) to measure how far the real engine moves on its own.")
	}

	d.h("Runs")
	rt := table{Head: []string{"run", "label", "type", "model", "GPU", "requests", "failed", "TPOT excluded", "stage key"}}
	for _, r := range append(append([]RunResult{}, res.Runs...), res.Reruns...) {
		rt.Rows = append(rt.Rows, []string{r.Name, r.Label, r.RunType, r.Model, orDash(gpuName(r.Hardware)),
			fmt.Sprint(r.NumRequests), fmt.Sprint(r.NumFailed), fmt.Sprint(r.TPOTExcluded), shortKey(r.Key)})
	}
	d.table(rt)
	d.p("Failed requests are excluded from every statistic and listed below. TPOT is undefined for requests with one output token; they are counted under \"TPOT excluded\".")

	figByKey := map[string]figure{}
	for _, f := range figs {
		figByKey[strings.TrimSuffix(strings.TrimPrefix(f.File, "figs/"), "_cdf.png")] = f
	}
	for _, m := range analysis.LatencyMetrics {
		d.h(fmt.Sprintf("%s (%s)", m.Name, m.Unit))
		d.p("%s.", upperFirst(m.Definition))
		d.table(metricTable(res, m))
		d.p("%s", quantileNote(res, m))
		if f, ok := figByKey[m.Key]; ok {
			d.fig(f)
		}
	}
	for _, f := range figs {
		if f.File == TimelineFile {
			d.h("Latency over time")
			d.p("%s", f.Caption)
			d.fig(f)
		}
	}
	if res.HasSteps {
		d.h("Batch composition (step_metrics.csv)")
		for _, m := range analysis.StepMetrics {
			d.p("**%s** (%s): %s.", m.Name, m.Unit, m.Definition)
			d.table(metricTable(res, m))
			d.p("%s", quantileNote(res, m))
		}
		if f, ok := figByKey[analysis.BatchSize]; ok {
			d.fig(f)
		}
	} else {
		d.p("Batch composition is not compared: not every run has step_metrics.csv.")
	}

	d.h("Failed requests")
	total := 0
	var counts []string
	for _, r := range res.Runs {
		total += r.NumFailed
		counts = append(counts, fmt.Sprintf("%s: %d", r.Label, r.NumFailed))
	}
	d.p("Failed requests per run: %s.", strings.Join(counts, "; "))
	if total > 0 {
		ft := table{Head: []string{"run", "request_id", "error_type", "error_message"}}
		for _, r := range res.Runs {
			for _, f := range r.Failed {
				if len(ft.Rows) < maxFailedListed {
					ft.Rows = append(ft.Rows, []string{r.Name, fmt.Sprint(f.RequestID), f.ErrorType, f.ErrorMessage})
				}
			}
		}
		d.table(ft)
		if total > maxFailedListed {
			d.p("First %d of %d shown; `tables/failed.csv` lists all.", maxFailedListed, total)
		}
	}

	d.h("Definitions")
	defs := []string{}
	for _, m := range res.Definitions {
		defs = append(defs, fmt.Sprintf("**%s** (%s): %s.", m.Name, m.Unit, m.Definition))
	}
	defs = append(defs,
		"**Quantiles** (P50, P90, P95, P99): "+analysis.QuantileMethod+".")
	if usedSketch(res) {
		defs = append(defs, fmt.Sprintf("**Sketched statistics**: a metric with more than %d values in a run (token gaps of large runs) is summarized by %s. Its KS and W1 against another run are computed on the sketches' common buckets and shown ± a bound on their error; the note under each table says which runs' numbers used it.",
			analysis.ExactLimit, analysis.SketchMethod))
	}
	defs = append(defs,
		"**Relative error** = (candidate - reference) / reference, signed: negative means the candidate under-predicts.",
		"**KS** = two-sample Kolmogorov-Smirnov statistic, sup over x of |F_ref(x) - F_cand(x)| of the empirical CDFs, in [0, 1].",
		"**W1** = Wasserstein-1 distance, the integral over x of |F_ref(x) - F_cand(x)|, in the metric's unit (ms for latencies).",
		"Times are measured from each run's start on a monotonic clock; latencies are converted from integer nanoseconds to milliseconds.",
	)
	d.list(defs)

	d.h("Provenance")
	d.table(provenanceTable(res))
	prov := fmt.Sprintf("Workload digest `%s`.", res.WorkloadDigest)
	if res.Key != "" {
		prov += fmt.Sprintf(" Compare stage `%s`, key `%s`.", res.Instance, res.Key)
	}
	d.p("%s", prov)
	return d
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// metricTable has one row per statistic and, per run, its value and (for
// candidates) the relative error, then KS and W1 rows.
func metricTable(res *Result, m analysis.MetricInfo) table {
	noise := res.Noise != nil
	t := table{Head: []string{"stat", res.Runs[0].Label}}
	if noise {
		t.Head = append(t.Head, "rerun band")
	}
	for _, c := range res.Candidates {
		t.Head = append(t.Head, c.Label, "error")
	}
	for _, st := range analysis.StatNames {
		refV := res.Runs[0].Stats[m.Key].Get(st)
		row := []string{st, fmtVal(refV)}
		if noise {
			row = append(row, bandText(res.Noise.Bands[m.Key][st], refV))
		}
		for i, c := range res.Candidates {
			e := fmtSignedPct(float64(c.RelErrors[m.Key][st]))
			if b, ok := noiseBand(res, m.Key, st); ok && e != "—" {
				if c.Noise.Within[m.Key][st] {
					e += " ✓"
				} else if b.Defined() {
					e += " ✗"
				}
			}
			row = append(row, fmtVal(res.Runs[i+1].Stats[m.Key].Get(st)), e)
		}
		t.Rows = append(t.Rows, row)
	}
	pad := func(row []string) []string {
		if noise {
			return append(row[:2:2], append([]string{""}, row[2:]...)...)
		}
		return row
	}
	ks := []string{"KS vs reference", "—"}
	w1 := []string{fmt.Sprintf("W1 vs reference (%s)", m.Unit), "—"}
	if noise {
		d := res.Noise.Rerun[m.Key]
		ks[1], w1[1] = "rerun: "+fmtKS(d.KS), "rerun: "+fmtVal(d.W1)
	}
	var ksr, w1r []string
	for _, c := range res.Candidates {
		d := c.Distances[m.Key]
		ks = append(ks, fmtKS(d.KS), "")
		w1 = append(w1, fmtVal(d.W1), "")
		if c.Noise != nil {
			r := c.Noise.Ratio[m.Key]
			ksr = append(ksr, fmtRatio(r.KS), "")
			w1r = append(w1r, fmtRatio(r.W1), "")
		}
	}
	t.Rows = append(t.Rows, pad(ks), pad(w1))
	if noise {
		t.Rows = append(t.Rows, append([]string{"KS / rerun's", "", ""}, ksr...), append([]string{"W1 / rerun's", "", ""}, w1r...))
	}
	return t
}

// quantileNote says under a metric's table how its numbers were computed:
// exactly, or (runs too large to hold every value) from a sketch, with the
// error bounds of KS and W1.
func quantileNote(res *Result, m analysis.MetricInfo) string {
	var sk []string
	for _, r := range res.Runs {
		if s := r.Stats[m.Key]; s.Quantiles == analysis.MethodSketch {
			sk = append(sk, fmt.Sprintf("%s (%d values)", r.Label, s.Count))
		}
	}
	if len(sk) == 0 {
		return "Quantiles, KS and W1: exact."
	}
	note := fmt.Sprintf("Quantiles: exact, except %s: DDSketch, each quantile within ±%g%% of the exact one.",
		strings.Join(sk, ", "), 100*analysis.SketchAccuracy)
	var bounds []string
	for _, c := range res.Candidates {
		d := c.Distances[m.Key]
		if d.KSError > 0 || d.W1Error > 0 {
			bounds = append(bounds, fmt.Sprintf("%s: KS ± %.3f, W1 ± %s %s", c.Label, d.KSError, fmtVal(d.W1Error), m.Unit))
		}
	}
	if len(bounds) > 0 {
		note += " KS and W1 on the sketches' buckets, within " + strings.Join(bounds, "; ") + " of the exact values."
	}
	return note
}

// usedSketch reports whether any statistic of res came from a sketch.
func usedSketch(res *Result) bool {
	for _, r := range res.Runs {
		for _, s := range r.Stats {
			if s.Quantiles == analysis.MethodSketch {
				return true
			}
		}
	}
	return false
}

// noiseBand is the band of a statistic when the comparison has one.
func noiseBand(res *Result, metric, stat string) (analysis.Band, bool) {
	if res.Noise == nil {
		return analysis.Band{}, false
	}
	b, ok := res.Noise.Bands[metric][stat]
	return b, ok
}

// bandText is a band relative to the reference value, "−4.4…+0.0%".
func bandText(b analysis.Band, ref float64) string {
	if !b.Defined() {
		return "—"
	}
	lo, hi := b.Rel(ref)
	return strings.TrimSuffix(fmtSignedPct(lo), "%") + "…" + fmtSignedPct(hi)
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v)
}

func fmtKS(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.3f", v)
}

// verdict says in plain words how each candidate differs from the
// reference on the percentiles people quote.
func verdict(res *Result) []string {
	var out []string
	ref := res.Runs[0].Label
	for _, c := range res.Candidates {
		if c.Verdict != nil {
			out = append(out, c.Verdict.Sentence+".")
		}
	}
	for _, c := range res.Candidates {
		worst, worstName := 0.0, ""
		var parts []string
		for _, m := range analysis.LatencyMetrics {
			var ps []string
			for _, st := range []string{analysis.StatP50, analysis.StatP99} {
				e := float64(c.RelErrors[m.Key][st])
				ps = append(ps, fmt.Sprintf("%s %s", strings.ToUpper(st), fmtSignedPct(e)))
				if !math.IsNaN(e) && (worstName == "" || math.Abs(e) > math.Abs(worst)) {
					worst, worstName = e, strings.ToUpper(st)+" "+m.Name
				}
			}
			parts = append(parts, fmt.Sprintf("%s %s (KS %s)", m.Name, strings.Join(ps, ", "), fmtKS(c.Distances[m.Key].KS)))
		}
		var head string
		switch {
		case worstName == "":
			head = fmt.Sprintf("**%s** cannot be compared with %s: no latency statistic is defined", c.Label, ref)
		case math.Abs(worst) < closeEnough:
			head = fmt.Sprintf("**%s** matches %s within %s on every P50 and P99 (largest: %s %s)", c.Label, ref, fmtPct(closeEnough), worstName, fmtSignedPct(worst))
		case worst < 0:
			head = fmt.Sprintf("**%s** under-predicts %s by %s (its largest P50/P99 error vs %s)", c.Label, worstName, fmtPct(-worst), ref)
		default:
			head = fmt.Sprintf("**%s** over-predicts %s by %s (its largest P50/P99 error vs %s)", c.Label, worstName, fmtPct(worst), ref)
		}
		out = append(out, head+". "+strings.Join(parts, "; ")+".")
	}
	for _, r := range res.Runs {
		if n := tokenTimingNote(r); n != "" {
			out = append(out, n)
		}
		if r.NumFailed > 0 {
			out = append(out, fmt.Sprintf("**%s**: %d of %d requests failed and are excluded from the statistics.", r.Label, r.NumFailed, r.NumRequests))
		}
	}
	return out
}

func provenanceTable(res *Result) table {
	t := table{Head: []string{"field"}}
	fields := map[string]bool{}
	all := append(append([]RunResult{}, res.Runs...), res.Reruns...)
	flat := make([]map[string]string, len(all))
	for i, r := range all {
		t.Head = append(t.Head, r.Label)
		f := map[string]string{
			"run_id": r.RunID, "run_type": r.RunType, "model": r.Model,
			"started_at": r.StartedAt, "ended_at": r.EndedAt,
			"stage key": r.Key, "stage instance": r.Instance,
		}
		flatten("hardware", r.Hardware, f)
		flatten("engine", r.Engine, f)
		flatten("extra", r.Extra, f)
		for k := range f {
			fields[k] = true
		}
		flat[i] = f
	}
	for _, k := range sortedKeys(fields) {
		row := []string{k}
		for _, f := range flat {
			row = append(row, orDash(f[k]))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}
