// Package report holds the comparison stages: `compare` (one workload, a
// reference run and candidate runs → tables, figures, summary.md,
// report.html, compare.json) and `report` (a sweep of compare outputs →
// errors and capacity against a matrix variable).
package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/schema"
)

// RunInput names one run folder of a comparison.
type RunInput struct {
	Name     string // the need's stage name
	Label    string // display name; Name when empty
	Dir      string
	Key      string // the upstream stage key, for provenance
	Instance string
}

// CompareInput is everything a comparison reads.
type CompareInput struct {
	Title      string
	Reference  RunInput
	Candidates []RunInput
	// Reruns are other real runs of the reference's workload and engine
	// (repeats): they measure the noise band.
	Reruns []RunInput
	// WorkloadDir, when set, is checked against every run (digest, request
	// ids and token counts).
	WorkloadDir string
	WorkloadKey string
	Instance    string
	Key         string
	Matrix      map[string]any
	// Window is the latency-over-time window; 0 picks one (TimelineWindow).
	Window time.Duration
}

// Compare loads the runs, checks they ran the same workload, computes every
// statistic and writes summary.md, report.html, compare.json, tables/ and
// figs/ into outDir.
func Compare(ctx context.Context, in CompareInput, outDir string, log io.Writer) (*Result, error) {
	if log == nil {
		log = io.Discard
	}
	all := append(append([]RunInput{in.Reference}, in.Candidates...), in.Reruns...)
	runs := make([]*analysis.Run, len(all))
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, ri := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i], errs[i] = analysis.LoadRun(ri.Dir)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("run %q: %w", ri.Name, errs[i])
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "loaded %d runs\n", len(runs))

	res := &Result{
		SchemaVersion:  ResultVersion,
		Title:          in.Title,
		Instance:       in.Instance,
		Key:            in.Key,
		Matrix:         in.Matrix,
		Reference:      in.Reference.Name,
		WorkloadDigest: runs[0].Meta.WorkloadDigest,
		QuantileMethod: analysis.QuantileMethod,
		HasSteps:       true,
	}
	if err := checkRuns(in, all, runs, res); err != nil {
		return nil, err
	}
	nCmp := 1 + len(in.Candidates)
	reruns := runs[nCmp:]
	runs = runs[:nCmp]
	for _, r := range runs {
		res.HasSteps = res.HasSteps && r.HasSteps
	}
	res.Definitions = res.metrics()
	for i, ri := range all[:nCmp] {
		res.Runs = append(res.Runs, runResult(ri, runs[i], res.metrics()))
	}
	for i, ri := range in.Reruns {
		res.Reruns = append(res.Reruns, runResult(ri, reruns[i], res.metrics()))
	}
	res.Noise = noiseOf(res.metrics(), runs[0], reruns)
	for i, ri := range in.Candidates {
		c := Candidate{Name: ri.Name, Label: label(ri), RelErrors: map[string]map[string]analysis.Num{}, Distances: map[string]analysis.Distance{}}
		for _, m := range res.metrics() {
			mc := analysis.CompareSamples(m.Key, runs[0].Samples[m.Key], runs[i+1].Samples[m.Key])
			errsByStat := map[string]analysis.Num{}
			for s, v := range mc.RelError {
				errsByStat[s] = analysis.Num(v)
			}
			c.RelErrors[m.Key] = errsByStat
			c.Distances[m.Key] = mc.Distance
		}
		c.Noise = candidateNoise(res.Noise, res.Runs[0].Stats, res.Runs[i+1].Stats, c.Distances)
		c.Verdict = judge(res.Noise, c, res.Runs[0].Stats, res.Runs[i+1].Stats, res.Runs[0].Label)
		res.Candidates = append(res.Candidates, c)
	}
	res.Verdict = oneLine(res)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	figs, err := writeFigures(outDir, res, runs, reruns)
	if err != nil {
		return nil, err
	}
	tf, err := writeTimeline(outDir, res, runs, in.Window)
	if err != nil {
		return nil, err
	}
	if tf != nil {
		figs = append(figs, *tf)
	}
	fmt.Fprintf(log, "wrote %d figures\n", len(figs))
	if err := writeCompareTables(outDir, res); err != nil {
		return nil, err
	}
	doc := compareDoc(res, figs)
	if err := os.WriteFile(filepath.Join(outDir, "summary.md"), []byte(doc.markdown()), 0o644); err != nil {
		return nil, err
	}
	html, err := doc.html(outDir)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(outDir, "report.html"), html, 0o644); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CompareFile, err)
	}
	if err := os.WriteFile(filepath.Join(outDir, CompareFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

func label(ri RunInput) string {
	if ri.Label != "" {
		return ri.Label
	}
	return ri.Name
}

// checkRuns refuses comparisons of different workloads: digests, request id
// sets and per-request token counts must agree (with the workload folder
// when given, else with the reference run).
func checkRuns(in CompareInput, all []RunInput, runs []*analysis.Run, res *Result) error {
	var errs []error
	want, from := runs[0].Meta.WorkloadDigest, fmt.Sprintf("the reference run %q (%s)", all[0].Name, all[0].Dir)
	if in.WorkloadDir != "" {
		d, err := schema.WorkloadDigest(in.WorkloadDir)
		if err != nil {
			return fmt.Errorf("workload %s: %w", in.WorkloadDir, err)
		}
		w, err := schema.ReadWorkload(in.WorkloadDir)
		if err != nil {
			return fmt.Errorf("workload %s: %w", in.WorkloadDir, err)
		}
		want, from = d, fmt.Sprintf("the workload (%s)", in.WorkloadDir)
		res.WorkloadDigest = d
		res.Workload = &WorkloadInfo{ID: w.Meta.WorkloadID, Model: w.Meta.Model, Dir: in.WorkloadDir, Key: in.WorkloadKey, NumRequests: len(w.Requests)}
		for i, r := range runs {
			if err := analysis.CheckDigest(all[i].Name, r, want, from); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := analysis.CheckAgainstWorkload(w, in.WorkloadDir, all[i].Name, r); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for i := 1; i < len(runs); i++ {
		if err := analysis.CheckDigest(all[i].Name, runs[i], want, from); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := analysis.CheckSameRequests(all[0].Name, runs[0], all[i].Name, runs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runResult(ri RunInput, r *analysis.Run, metrics []analysis.MetricInfo) RunResult {
	rr := RunResult{
		Name: ri.Name, Label: label(ri), Dir: ri.Dir, Key: ri.Key, Instance: ri.Instance,
		RunID: r.Meta.RunID, RunType: r.Meta.RunType, Model: r.Meta.Model,
		Hardware: r.Meta.Hardware, Engine: r.Meta.Engine, Extra: r.Meta.Extra,
		StartedAt: r.Meta.StartedAt, EndedAt: r.Meta.EndedAt,
		NumRequests: len(r.Shapes), NumFailed: len(r.Failed), TPOTExcluded: r.TPOTExcluded,
		Failed: r.Failed, Stats: map[string]analysis.Summary{},
	}
	if rr.Failed == nil {
		rr.Failed = []analysis.Failed{}
	}
	for _, m := range metrics {
		rr.Stats[m.Key] = r.Samples[m.Key].Summary()
	}
	rr.Quantiles = map[string][]analysis.Num{}
	for _, k := range []string{analysis.TTFT, analysis.TPOT} {
		q := make([]analysis.Num, 101)
		for i := range q {
			q[i] = analysis.Num(r.Samples[k].Quantile(float64(i) / 100))
		}
		rr.Quantiles[k] = q
	}
	return rr
}

// figure is one written PNG.
type figure struct {
	File    string // relative to the output folder
	Title   string
	Caption string
}

func writeFigures(outDir string, res *Result, runs, reruns []*analysis.Run) ([]figure, error) {
	if err := os.MkdirAll(filepath.Join(outDir, "figs"), 0o755); err != nil {
		return nil, err
	}
	keys := []string{analysis.TTFT, analysis.ITL, analysis.TPOT, analysis.E2E}
	if res.HasSteps {
		keys = append(keys, analysis.BatchSize)
	}
	figs := make([]figure, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		m := analysis.Info(k)
		figs[i] = figure{File: "figs/" + k + "_cdf.png", Title: "CDF of " + m.Name, Caption: m.Definition}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lines := make([]CDFLine, len(runs), len(runs)+len(reruns))
			for j, r := range runs {
				s := r.Samples[k]
				lines[j] = CDFLine{Label: res.Runs[j].Label, Sorted: s.CDFPoints(cdfSketchPoints), N: s.Len()}
			}
			for j, r := range reruns {
				s := r.Samples[k]
				lines = append(lines, CDFLine{Label: res.Reruns[j].Label, Sorted: s.CDFPoints(cdfSketchPoints), N: s.Len()})
			}
			f, err := os.Create(filepath.Join(outDir, figs[i].File))
			if err != nil {
				errs[i] = err
				return
			}
			err = WriteCDF(f, figs[i].Title, m, lines)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return figs, errors.Join(errs...)
}

func writeCompareTables(outDir string, res *Result) error {
	dir := filepath.Join(outDir, "tables")
	var stats, errRows, dist, batch, failed, noise [][]string
	for _, rr := range append(append([]RunResult{}, res.Runs...), res.Reruns...) {
		for _, m := range analysis.LatencyMetrics {
			s := rr.Stats[m.Key]
			for _, st := range analysis.StatNames {
				stats = append(stats, []string{rr.Name, m.Key, st, csvNum(s.Get(st)), s.Quantiles})
			}
		}
		for _, f := range rr.Failed {
			failed = append(failed, []string{rr.Name, fmt.Sprint(f.RequestID), f.ErrorType, f.ErrorMessage})
		}
	}
	ref := res.Runs[0]
	for ci, c := range res.Candidates {
		cr := res.Runs[ci+1]
		for _, m := range analysis.LatencyMetrics {
			for _, st := range analysis.StatNames {
				errRows = append(errRows, []string{c.Name, m.Key, st, csvNum(ref.Stats[m.Key].Get(st)),
					csvNum(cr.Stats[m.Key].Get(st)), csvNum(float64(c.RelErrors[m.Key][st]))})
			}
			d := c.Distances[m.Key]
			ratio := analysis.Distance{KS: math.NaN(), W1: math.NaN()}
			if c.Noise != nil {
				ratio = c.Noise.Ratio[m.Key]
			}
			dist = append(dist, []string{c.Name, m.Key, csvNum(d.KS), csvNum(d.W1), csvNum(d.KSError), csvNum(d.W1Error), csvNum(ratio.KS), csvNum(ratio.W1)})
			if res.Noise == nil {
				continue
			}
			for _, st := range analysis.StatNames {
				b, ok := res.Noise.Bands[m.Key][st]
				if !ok {
					continue
				}
				refV := ref.Stats[m.Key].Get(st)
				lo, hi := b.Rel(refV)
				noise = append(noise, []string{c.Name, m.Key, st, csvNum(refV), csvNum(cr.Stats[m.Key].Get(st)),
					csvNum(float64(c.RelErrors[m.Key][st])), csvNum(float64(b.Lo)), csvNum(float64(b.Hi)), csvNum(lo), csvNum(hi),
					fmt.Sprint(b.Runs), fmt.Sprint(b.MinCount), fmt.Sprint(c.Noise.Within[m.Key][st])})
			}
		}
	}
	// Step metrics have their own units (requests, tokens, ms), so they get
	// their own long table with the unit, error and distances beside them.
	if res.HasSteps {
		for ri, rr := range res.Runs {
			for _, m := range analysis.StepMetrics {
				for _, st := range analysis.StatNames {
					rel := ""
					if ri > 0 {
						rel = csvNum(float64(res.Candidates[ri-1].RelErrors[m.Key][st]))
					}
					batch = append(batch, []string{rr.Name, m.Key, m.Unit, st, csvNum(rr.Stats[m.Key].Get(st)), rel})
				}
				if ri > 0 {
					d := res.Candidates[ri-1].Distances[m.Key]
					batch = append(batch, []string{rr.Name, m.Key, "", "ks", csvNum(d.KS), ""},
						[]string{rr.Name, m.Key, m.Unit, "w1", csvNum(d.W1), ""})
				}
			}
		}
	}
	files := []struct {
		name   string
		header []string
		rows   [][]string
	}{
		{"stats.csv", []string{"run", "metric", "stat", "value_ms", "quantiles"}, stats},
		{"errors.csv", []string{"candidate", "metric", "stat", "ref_ms", "cand_ms", "rel_error"}, errRows},
		{"distances.csv", []string{"candidate", "metric", "ks", "w1_ms", "ks_error", "w1_error_ms", "ks_ratio_to_rerun", "w1_ratio_to_rerun"}, dist},
		{"failed.csv", []string{"run", "request_id", "error_type", "error_message"}, failed},
	}
	if res.Noise != nil {
		files = append(files, struct {
			name   string
			header []string
			rows   [][]string
		}{"noise.csv", []string{"candidate", "metric", "stat", "ref_ms", "cand_ms", "rel_error", "band_lo_ms", "band_hi_ms",
			"band_lo_rel", "band_hi_rel", "band_runs", "band_min_count", "within_noise"}, noise})
	}
	if res.HasSteps {
		files = append(files, struct {
			name   string
			header []string
			rows   [][]string
		}{"batch.csv", []string{"run", "metric", "unit", "stat", "value", "rel_error"}, batch})
	}
	for _, f := range files {
		if err := writeCSV(filepath.Join(dir, f.name), f.header, f.rows); err != nil {
			return err
		}
	}
	return nil
}
