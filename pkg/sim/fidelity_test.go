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
	sweep     string // the folder under testdata/real the run belongs to
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
			rel, _ := filepath.Rel(root, dir)
			runs = append(runs, realRun{dir: dir, meta: m, sweep: strings.Split(filepath.ToSlash(rel), "/")[0]})
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
	slices.SortFunc(out, func(a, b realRun) int {
		if a.sweep != b.sweep {
			return strings.Compare(a.sweep, b.sweep)
		}
		return int(math.Copysign(1, a.rate-b.rate))
	})
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
	sweep     string
	rate      float64
	predictor string
	errs      map[string]float64 // "ttft.p50" -> signed relative error (median over seeds)
	lo, hi    map[string]float64 // its range over seeds (step model only)
}

// fidelitySeeds is how many stall/capture seeds the step model is run with.
const fidelitySeeds = 10

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
	if err := NewKind().Run(context.Background(), spec, stage.Env{}); err != nil {
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
		rs, cs := ref.Samples[k].Summary(), cand.Samples[k].Summary()
		for _, s := range fidelityStats {
			m[k+"."+s] = analysis.RelError(rs.Get(s), cs.Get(s))
		}
	}
	return m
}

// TestFidelity trains the step model on every other recorded rate (from
// the lowest) of every recorded sweep together and simulates the held-out
// rates of each sweep with it and with vidur-profile, reporting the errors
// of TTFT, TPOT and E2E percentiles. Beside them, the noise floor: the
// other sweep's real run of the same workload read as if it were a
// prediction. It runs when testdata/real holds recorded runs;
// -fidelity-out writes the table for docs/simulator.md. For exploration,
// $GSIM_FIT_FEATURES (comma separated) changes the model form (the limits
// are then not asserted) and $GSIM_SIM_SEED the stall seed.
func TestFidelity(t *testing.T) {
	root := filepath.Join(repoRoot(t), "testdata", "real")
	runs := findRealRuns(t, root)
	if len(runs) < 3 {
		t.Skipf("need at least 3 recorded real runs with step_metrics under %s, found %d", root, len(runs))
	}
	var rates []float64
	for _, r := range runs {
		if !slices.Contains(rates, r.rate) {
			rates = append(rates, r.rate)
		}
	}
	slices.Sort(rates)
	var trainRates []any
	for i, r := range rates {
		if i%2 == 0 {
			trainRates = append(trainRates, r)
		}
	}
	isTrain := func(r realRun) bool { return slices.Contains(trainRates, any(r.rate)) }
	fitOut := t.TempDir()
	var fitInputs []stage.Input
	for _, r := range runs {
		fitInputs = append(fitInputs, stage.Input{Instance: fmt.Sprintf("%s[rate=%v]", r.sweep, r.rate), Kind: "real-bench", Holds: stage.HoldsRun,
			Dir: r.dir, Matrix: map[string]any{"rate": r.rate}})
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
	for _, r := range runs {
		if isTrain(r) {
			continue
		}
		ref, err := analysis.LoadRun(r.dir)
		if err != nil {
			t.Fatal(err)
		}
		params := simParamsFor(r.meta)
		// The step model draws graph captures and host stalls from a seeded
		// generator; the table shows the median error over fidelitySeeds
		// seeds, so it shows the model, not one draw, and the spread is kept.
		row := fidelityRow{sweep: r.sweep, rate: r.rate, predictor: PredictorStepModel, errs: map[string]float64{},
			lo: map[string]float64{}, hi: map[string]float64{}}
		seeds := fidelitySeeds
		if os.Getenv("GSIM_SIM_SEED") != "" {
			seeds = 1
		}
		perSeed := map[string][]float64{}
		for seed := 0; seed < seeds; seed++ {
			if os.Getenv("GSIM_SIM_SEED") == "" {
				params["seed"] = seed
			}
			sm := simulate(t, r, params, map[string][]stage.Input{"fit": {{Instance: "fit", Kind: "fit", Dir: fitOut}}})
			for k, v := range relErrors(ref, sm) {
				perSeed[k] = append(perSeed[k], v)
				if seed == 0 || v < row.lo[k] {
					row.lo[k] = v
				}
				if seed == 0 || v > row.hi[k] {
					row.hi[k] = v
				}
			}
		}
		// The median over seeds: a run's capture level is drawn once, and
		// near saturation the dear draws tip the run into a backlog, so the
		// errors over seeds are skewed and their mean follows the few
		// worst draws.
		for k, vs := range perSeed {
			slices.Sort(vs)
			row.errs[k] = (vs[(len(vs)-1)/2] + vs[len(vs)/2]) / 2
		}
		delete(params, "seed")
		rows = append(rows, row)
		if _, err := os.Stat(profileDir); err == nil {
			vp := simulate(t, r, params, map[string][]stage.Input{"profile": {{Instance: "profile", Kind: "profile", Dir: profileDir}}})
			rows = append(rows, fidelityRow{sweep: r.sweep, rate: r.rate, predictor: PredictorVidurProfile, errs: relErrors(ref, vp)})
		}
		// The noise floor: every other sweep's real run of this workload,
		// read as a prediction of this one.
		for _, o := range runs {
			if o.sweep == r.sweep || o.rate != r.rate || o.meta.WorkloadDigest != r.meta.WorkloadDigest {
				continue
			}
			other, err := analysis.LoadRun(o.dir)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, fidelityRow{sweep: r.sweep, rate: r.rate, predictor: "real " + o.sweep, errs: relErrors(ref, other)})
		}
	}
	var train []string
	for _, r := range trainRates {
		train = append(train, fmt.Sprint(r))
	}
	table := fidelityTable(train, rows)
	t.Logf("\n%s", table)
	if *fidelityOut != "" {
		if err := os.WriteFile(*fidelityOut, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noise := map[string]map[string]float64{} // sweep|rate -> metric -> largest |other sweep's error|
	for _, row := range rows {
		if strings.HasPrefix(row.predictor, "real ") {
			key := fmt.Sprintf("%s|%v", row.sweep, row.rate)
			if noise[key] == nil {
				noise[key] = map[string]float64{}
			}
			for k, v := range row.errs {
				noise[key][k] = math.Max(noise[key][k], math.Abs(v))
			}
		}
	}
	for _, row := range rows {
		for k, v := range row.errs {
			if math.IsNaN(v) {
				t.Errorf("%s rate %v %s %s: error undefined", row.sweep, row.rate, row.predictor, k)
			}
			// Below saturation (the recorded engine saturates at about 8
			// req/s) the step model, its median over seeds, must stay within
			// a fixed bound or, where the real engine differs more than
			// that from itself on the same workload, within that spread
			// (+20%): a regression guard, not the target.
			if row.predictor != PredictorStepModel || row.rate >= belowSaturation || os.Getenv("GSIM_FIT_FEATURES") != "" {
				continue
			}
			limit := 0.10
			if strings.HasSuffix(k, analysis.StatP99) {
				limit = 0.30
			}
			limit = math.Max(limit, 1.2*noise[fmt.Sprintf("%s|%v", row.sweep, row.rate)][k])
			if math.Abs(v) > limit {
				t.Errorf("%s rate %v %s: %+.1f%% (limit %.0f%%)", row.sweep, row.rate, k, 100*v, 100*limit)
			}
		}
	}
}

func fidelityTable(train []string, rows []fidelityRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Trained on rates %s req/s of every sweep; signed relative error (predicted − real) / real; step-model rows are the median over %d seeds, with their range below; \"real <sweep>\" rows read the other sweep's real run as the prediction (the noise floor).\n\n", strings.Join(train, ", "), fidelitySeeds)
	b.WriteString("| sweep | rate | predictor |")
	for _, k := range fidelityMetrics {
		for _, s := range fidelityStats {
			fmt.Fprintf(&b, " %s %s |", strings.ToUpper(k), strings.ToUpper(s))
		}
	}
	b.WriteString("\n| --- | ---: | --- |" + strings.Repeat(" ---: |", len(fidelityMetrics)*len(fidelityStats)) + "\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %v | %s |", row.sweep, row.rate, row.predictor)
		for _, k := range fidelityMetrics {
			for _, s := range fidelityStats {
				fmt.Fprintf(&b, " %+.1f%% |", 100*row.errs[k+"."+s])
			}
		}
		b.WriteString("\n")
		if row.lo != nil {
			fmt.Fprintf(&b, "| | | (range over %d seeds) |", fidelitySeeds)
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
