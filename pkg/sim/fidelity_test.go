package sim

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

var fidelityOut = flag.String("fidelity-out", "", "write the fidelity table (markdown) to this file")

// realRun is a recorded real run with the workload it replayed.
type realRun struct {
	dir, wdir string
	rate      float64
	meta      *schema.RunMeta
}

// findRealRuns pairs every recorded real run under root that has
// step_metrics.csv with its workload folder (by workload digest) and reads
// the arrival rate from the workload's params.
func findRealRuns(t *testing.T, root string) []realRun {
	t.Helper()
	workloads := map[string]string{}
	var runs []realRun
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch d.Name() {
		case schema.TraceLengthsFile:
			dg, err := schema.WorkloadDigest(filepath.Dir(p))
			if err == nil {
				workloads[dg] = filepath.Dir(p)
			}
		case schema.RunMetaFile:
			dir := filepath.Dir(p)
			if _, err := os.Stat(filepath.Join(dir, schema.StepMetricsFile)); err != nil {
				return nil
			}
			// The primary run of each cell; repeats and timestamps-off runs
			// are for noise studies.
			if filepath.Base(dir) != "run" {
				return nil
			}
			m, err := schema.ReadRunMeta(p)
			if err != nil || m.RunType != schema.RunReal {
				return nil
			}
			runs = append(runs, realRun{dir: dir, meta: m})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []realRun
	for _, r := range runs {
		r.wdir = workloads[r.meta.WorkloadDigest]
		if r.wdir == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(r.wdir, schema.WorkloadMetaFile))
		if err != nil {
			continue
		}
		var wm struct {
			Params struct {
				Arrival struct {
					Rate float64 `json:"rate"`
				} `json:"arrival"`
			} `json:"params"`
		}
		if json.Unmarshal(b, &wm) != nil || wm.Params.Arrival.Rate <= 0 {
			continue
		}
		r.rate = wm.Params.Arrival.Rate
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b realRun) int { return int(math.Copysign(1, a.rate-b.rate)) })
	return out
}

// simParamsFor carries the real engine's settings into the sim params.
func simParamsFor(m *schema.RunMeta) map[string]any {
	p := map[string]any{"scheduler": "hf-cb"}
	e := m.Engine
	if s, _ := e["scheduler"].(string); s == "prefill_first" {
		p["scheduler"] = "hf-cb-prefill-first"
	}
	num := func(k string) (float64, bool) { v, ok := e[k].(float64); return v, ok }
	if v, ok := num("block_size"); ok {
		p["block_size"] = v
	}
	if v, ok := num("num_blocks"); ok {
		p["num_blocks"] = v
	}
	if v, ok := num("max_batch_tokens"); ok {
		p["max_batch_tokens"] = v
	}
	if v, ok := num("safety_margin"); ok {
		p["safety_margin"] = v
	}
	if v, ok := num("max_requests_per_batch"); ok && v > 0 {
		p["batch_size_cap"] = v
	}
	if v := os.Getenv("GSIM_SIM_SEED"); v != "" {
		var seed int64
		fmt.Sscan(v, &seed)
		p["seed"] = seed
	}
	return p
}

type fidelityRow struct {
	rate      float64
	predictor string
	errs      map[string]float64 // "ttft.p50" -> signed relative error (mean over seeds)
	lo, hi    map[string]float64 // its range over seeds (step model only)
}

// fidelitySeeds is how many stall/capture seeds the step model is run with.
const fidelitySeeds = 5

// belowSaturation bounds the rates the fidelity limits apply to.
const belowSaturation = 7

var fidelityMetrics = []string{analysis.TTFT, analysis.TPOT, analysis.E2E}
var fidelityStats = []string{analysis.StatP50, analysis.StatP90, analysis.StatP99}

func simulate(t *testing.T, r realRun, params map[string]any, inputs map[string][]stage.Input) *analysis.Run {
	t.Helper()
	out := t.TempDir()
	in := map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: r.wdir}}}
	for k, v := range inputs {
		in[k] = v
	}
	spec := &stage.Spec{Instance: fmt.Sprintf("sim[rate=%v]", r.rate), Key: "fidelity", BaseDir: repoRoot(t),
		OutDir: out, Params: params, Inputs: in}
	if err := NewKind(nil).Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	run, err := analysis.LoadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func relErrors(ref, cand *analysis.Run) map[string]float64 {
	m := map[string]float64{}
	for _, k := range fidelityMetrics {
		rs, cs := analysis.Summarize(ref.Samples[k]), analysis.Summarize(cand.Samples[k])
		for _, s := range fidelityStats {
			m[k+"."+s] = analysis.RelError(rs.Get(s), cs.Get(s))
		}
	}
	return m
}

// TestFidelity trains the step model on every other recorded rate (from
// the lowest) and simulates the held-out rates with it and with
// vidur-profile, reporting the errors of TTFT, TPOT and E2E percentiles.
// It runs when testdata/real holds recorded runs; -fidelity-out writes the
// table for docs/simulator.md. For exploration, $GSIM_FIT_FEATURES (comma
// separated) changes the model form (the limits are then not asserted) and
// $GSIM_SIM_SEED the stall seed.
func TestFidelity(t *testing.T) {
	root := filepath.Join(repoRoot(t), "testdata", "real")
	runs := findRealRuns(t, root)
	if len(runs) < 3 {
		t.Skipf("need at least 3 recorded real runs with step_metrics under %s, found %d", root, len(runs))
	}
	var train, test []realRun
	for i, r := range runs {
		if i%2 == 0 {
			train = append(train, r)
		} else {
			test = append(test, r)
		}
	}
	fitOut := t.TempDir()
	var fitInputs []stage.Input
	var trainRates []any
	for _, r := range runs {
		fitInputs = append(fitInputs, stage.Input{Instance: fmt.Sprintf("bench[rate=%v]", r.rate), Kind: "real-bench",
			Dir: r.dir, Matrix: map[string]any{"rate": r.rate}})
	}
	for _, r := range train {
		trainRates = append(trainRates, r.rate)
	}
	fparams := map[string]any{"train": map[string]any{"rate": trainRates}}
	if f := os.Getenv("GSIM_FIT_FEATURES"); f != "" {
		var fs []any
		for _, x := range strings.Split(f, ",") {
			fs = append(fs, x)
		}
		fparams["features"] = fs
	}
	fspec := &stage.Spec{Instance: "fit", OutDir: fitOut, Inputs: map[string][]stage.Input{"bench": fitInputs},
		Params: fparams}
	if err := NewFitKind().Run(context.Background(), fspec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(filepath.Join(fitOut, FitReportFile))
	t.Logf("fit report:\n%s", report)
	profileDir := filepath.Join(repoRoot(t), "testdata", "profile", "h100")
	var rows []fidelityRow
	for _, r := range test {
		ref, err := analysis.LoadRun(r.dir)
		if err != nil {
			t.Fatal(err)
		}
		params := simParamsFor(r.meta)
		// The step model draws graph captures and host stalls from a seeded
		// generator; the errors are averaged over fidelitySeeds seeds so
		// the table shows the model, not one draw, and the spread is kept.
		row := fidelityRow{rate: r.rate, predictor: PredictorStepModel, errs: map[string]float64{},
			lo: map[string]float64{}, hi: map[string]float64{}}
		seeds := fidelitySeeds
		if os.Getenv("GSIM_SIM_SEED") != "" {
			seeds = 1
		}
		for seed := 0; seed < seeds; seed++ {
			if os.Getenv("GSIM_SIM_SEED") == "" {
				params["seed"] = seed
			}
			sm := simulate(t, r, params, map[string][]stage.Input{"fit": {{Instance: "fit", Kind: "fit", Dir: fitOut}}})
			for k, v := range relErrors(ref, sm) {
				row.errs[k] += v / float64(seeds)
				if seed == 0 || v < row.lo[k] {
					row.lo[k] = v
				}
				if seed == 0 || v > row.hi[k] {
					row.hi[k] = v
				}
			}
		}
		delete(params, "seed")
		rows = append(rows, row)
		if _, err := os.Stat(profileDir); err == nil {
			vp := simulate(t, r, params, map[string][]stage.Input{"profile": {{Instance: "profile", Kind: "profile", Dir: profileDir}}})
			rows = append(rows, fidelityRow{rate: r.rate, predictor: PredictorVidurProfile, errs: relErrors(ref, vp)})
		}
	}
	table := fidelityTable(train, rows)
	t.Logf("\n%s", table)
	if *fidelityOut != "" {
		if err := os.WriteFile(*fidelityOut, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, row := range rows {
		for k, v := range row.errs {
			if math.IsNaN(v) {
				t.Errorf("rate %v %s %s: error undefined", row.rate, row.predictor, k)
			}
			// Below saturation (the recorded engine saturates at about 8
			// req/s) the step model, averaged over seeds, must stay near
			// the real engine's own repeat spread (5% at the median, ~22%
			// at P99 of 200 requests).
			if row.predictor != PredictorStepModel || row.rate >= belowSaturation || os.Getenv("GSIM_FIT_FEATURES") != "" {
				continue
			}
			limit := 0.10
			if strings.HasSuffix(k, analysis.StatP99) {
				limit = 0.30
			}
			if math.Abs(v) > limit {
				t.Errorf("rate %v %s: %+.1f%% (limit %.0f%%)", row.rate, k, 100*v, 100*limit)
			}
		}
	}
}

func fidelityTable(train []realRun, rows []fidelityRow) string {
	var b strings.Builder
	var tr []string
	for _, r := range train {
		tr = append(tr, fmt.Sprint(r.rate))
	}
	fmt.Fprintf(&b, "Trained on rates %s req/s; signed relative error (sim − real) / real; step-model rows are the mean over %d seeds, with their range below.\n\n", strings.Join(tr, ", "), fidelitySeeds)
	b.WriteString("| rate | predictor |")
	for _, k := range fidelityMetrics {
		for _, s := range fidelityStats {
			fmt.Fprintf(&b, " %s %s |", strings.ToUpper(k), strings.ToUpper(s))
		}
	}
	b.WriteString("\n| ---: | --- |" + strings.Repeat(" ---: |", len(fidelityMetrics)*len(fidelityStats)) + "\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %v | %s |", row.rate, row.predictor)
		for _, k := range fidelityMetrics {
			for _, s := range fidelityStats {
				fmt.Fprintf(&b, " %+.1f%% |", 100*row.errs[k+"."+s])
			}
		}
		b.WriteString("\n")
		if row.lo != nil {
			fmt.Fprintf(&b, "| | (range over %d seeds) |", fidelitySeeds)
			for _, k := range fidelityMetrics {
				for _, s := range fidelityStats {
					fmt.Fprintf(&b, " %+.0f…%+.0f%% |", 100*row.lo[k+"."+s], 100*row.hi[k+"."+s])
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
