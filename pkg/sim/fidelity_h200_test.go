package sim

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/workload"
)

// The H200 held-out study (experiments/qwen3-h200.yaml) on its recorded
// excerpt, testdata/fidelity/h200-qwen3-0.6b: the training family's runs
// with their step logs, every held-out run's request metrics (two engine
// processes per cell), and the all-at-once family's step logs. Workloads
// are regenerated from the experiment file and matched by digest.

var h200Out = flag.String("fidelity-h200-out", "", "write the H200 held-out table (markdown) to this file")

// h200Family is one workload family of the study.
type h200Family struct {
	name  string // folder under testdata/fidelity/h200-qwen3-0.6b and stage suffix
	x     string // its matrix variable
	cell  string // cell folders are <cell>-<value>
	unit  string // how the table names a cell's value
	cells []h200Cell
}

type h200Cell struct {
	x    float64 // the matrix value: arrival rate, or requests in the burst
	wdir string
	runs []string // run folders, the reference first
}

// h200FamilySpecs are the study's families; the first is the training one.
var h200FamilySpecs = []h200Family{
	{name: "train", x: "rate", cell: "rate", unit: "%v req/s"},
	{name: "bursty", x: "bursty_rate", cell: "rate", unit: "%v req/s"},
	{name: "longout", x: "longout_rate", cell: "rate", unit: "%v req/s"},
	{name: "allatonce", x: "burst_requests", cell: "requests", unit: "%v at once"},
}

// h200Workloads generates every workload stage of the experiment and maps
// digest → folder.
func h200Workloads(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	pl, err := experiment.Load(filepath.Join(root, "experiments", "qwen3-h200.yaml"), experiment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range pl.Instances {
		if in.Kind != "workload" {
			continue
		}
		dir := filepath.Join(t.TempDir(), "w")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		spec := &stage.Spec{Instance: in.ID, BaseDir: pl.BaseDir, Params: in.Params, OutDir: dir}
		if err := (workload.Kind{}).Run(context.Background(), spec, stage.Env{}); err != nil {
			t.Fatal(err)
		}
		d, err := schema.WorkloadDigest(dir)
		if err != nil {
			t.Fatal(err)
		}
		out[d] = dir
	}
	return out
}

func h200Families(t *testing.T) []h200Family {
	t.Helper()
	root := filepath.Join(repoRoot(t), "testdata", "fidelity", "h200-qwen3-0.6b")
	if _, err := os.Stat(root); err != nil {
		t.Skipf("no recorded H200 study under %s", root)
	}
	workloads := h200Workloads(t)
	var fams []h200Family
	for _, fam := range h200FamilySpecs {
		cellDirs, _ := filepath.Glob(filepath.Join(root, fam.name, fam.cell+"-*"))
		if len(cellDirs) == 0 {
			t.Fatalf("no %s-* cells under %s", fam.cell, filepath.Join(root, fam.name))
		}
		for _, cd := range cellDirs {
			var c h200Cell
			if _, err := fmt.Sscanf(filepath.Base(cd), fam.cell+"-%g", &c.x); err != nil {
				t.Fatalf("%s: %v", cd, err)
			}
			runs, _ := filepath.Glob(filepath.Join(cd, "run*"))
			sort.Strings(runs)
			c.runs = runs
			for _, r := range runs {
				m, err := schema.ReadRunMeta(filepath.Join(r, schema.RunMetaFile))
				if err != nil {
					t.Fatal(err)
				}
				w := workloads[m.WorkloadDigest]
				if w == "" {
					t.Fatalf("%s: workload digest %s matches no workload stage of experiments/qwen3-h200.yaml; the recording and the experiment disagree", r, m.WorkloadDigest)
				}
				if c.wdir != "" && c.wdir != w {
					t.Fatalf("%s: runs of one cell on different workloads", cd)
				}
				c.wdir = w
			}
			fam.cells = append(fam.cells, c)
		}
		sort.Slice(fam.cells, func(i, j int) bool { return fam.cells[i].x < fam.cells[j].x })
		fams = append(fams, fam)
	}
	return fams
}

// latencySamples reads TTFT, TPOT and E2E (ms, ascending) from a run
// folder's request_metrics (plain or gzipped), by analysis' definitions.
func latencySamples(t *testing.T, dir string) map[string][]float64 {
	t.Helper()
	reqs, err := schema.ReadRequestMetrics(filepath.Join(dir, schema.RequestMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	s := map[string][]float64{}
	for _, r := range reqs {
		if r.Status != schema.StatusOK {
			t.Fatalf("%s: request %d %s", dir, r.RequestID, r.Status)
		}
		s[analysis.TTFT] = append(s[analysis.TTFT], float64(r.TTFTNs)/1e6)
		s[analysis.E2E] = append(s[analysis.E2E], float64(r.CompletionTimeNs-r.ArrivalTimeNs)/1e6)
		if r.NumDecodeTokensActual > 1 {
			s[analysis.TPOT] = append(s[analysis.TPOT], float64(r.CompletionTimeNs-r.FirstTokenTimeNs)/1e6/float64(r.NumDecodeTokensActual-1))
		}
	}
	for _, v := range s {
		slices.Sort(v)
	}
	return s
}

// h200SLO is the report stages' SLO (P99 TTFT, ms).
const h200SLO = 500

// h200Seeds is how many capture-draw seeds the table's range covers; the
// verdict is on seed 0, the experiment's.
const h200Seeds = 5

type h200Row struct {
	fam     string
	cell    string // "5 req/s", "64 at once"
	x       float64
	refN    int
	ref     map[string]analysis.Summary
	band    map[string]map[string]analysis.Band
	err     map[string]map[string]float64 // seed 0
	lo, hi  map[string]map[string]float64 // over seeds
	within  map[string]map[string]bool
	ratio   map[string]float64 // W1 / rerun's, per metric
	held    int
	met     int
	simP99  float64
	realP99 float64
}

// h200Fit fits the step model on the training family (the first), as the
// study's fit stage does, and returns its folder and fit.md.
func h200Fit(t *testing.T, fams []h200Family) (string, string) {
	t.Helper()
	var fitIn []stage.Input
	for _, c := range fams[0].cells {
		fitIn = append(fitIn, stage.Input{Instance: fmt.Sprintf("real-train[rate=%v]", c.x), Kind: "real-bench", Holds: stage.HoldsRun, Dir: c.runs[0],
			Matrix: map[string]any{"rate": c.x}})
	}
	fitOut := t.TempDir()
	if err := NewFitKind().Run(context.Background(), &stage.Spec{Instance: "fit", OutDir: fitOut,
		Inputs: map[string][]stage.Input{"real-train": fitIn}, Params: map[string]any{}}, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(filepath.Join(fitOut, FitReportFile))
	if !strings.Contains(string(report), "engine mechanics") {
		t.Fatalf("the fit did not use the mechanics form:\n%s", report)
	}
	return fitOut, string(report)
}

// h200Sim simulates a cell's workload with the fitted step model, as the
// study's sim stages do, and returns the run folder.
func h200Sim(t *testing.T, fam h200Family, c h200Cell, fitOut string, seed int) string {
	t.Helper()
	out := t.TempDir()
	spec := &stage.Spec{Instance: fmt.Sprintf("sim-%s[%s=%v]", fam.name, fam.x, c.x), BaseDir: repoRoot(t), OutDir: out,
		Params: map[string]any{"engine": "embedded", "scheduler": "hf-cb", "predictor": "step-model", "hardware": "h200", "seed": seed},
		Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Holds: stage.HoldsWorkload, Dir: c.wdir}},
			"fit": {{Instance: "fit", Kind: "fit", Holds: stage.HoldsFit, Dir: fitOut}}}}
	if err := NewKind().Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFidelityH200 fits the step model on the training family only and
// checks it on the held-out families against the engine's own rerun band.
// -fidelity-h200-out writes the table for docs/simulator.md. The limits
// asserted are a regression guard at today's level, not the target (the
// table says which statistics meet the target).
func TestFidelityH200(t *testing.T) {
	fams := h200Families(t)
	fitOut, report := h200Fit(t, fams)
	var rows []h200Row
	for _, fam := range fams[1:] {
		for _, c := range fam.cells {
			reals := make([]map[string][]float64, len(c.runs))
			for i, r := range c.runs {
				reals[i] = latencySamples(t, r)
			}
			row := h200Row{fam: fam.name, cell: fmt.Sprintf(fam.unit, c.x), x: c.x, refN: len(reals[0][analysis.TTFT]), ref: map[string]analysis.Summary{},
				band: map[string]map[string]analysis.Band{}, err: map[string]map[string]float64{}, lo: map[string]map[string]float64{},
				hi: map[string]map[string]float64{}, within: map[string]map[string]bool{}, ratio: map[string]float64{}}
			for seed := 0; seed < h200Seeds; seed++ {
				out := h200Sim(t, fam, c, fitOut, seed)
				sim := latencySamples(t, out)
				for _, m := range fidelityMetrics {
					if row.err[m] == nil {
						row.err[m], row.lo[m], row.hi[m] = map[string]float64{}, map[string]float64{}, map[string]float64{}
					}
					ref := analysis.Summarize(reals[0][m])
					for _, st := range fidelityStats {
						e := analysis.RelError(ref.Get(st), analysis.Summarize(sim[m]).Get(st))
						if seed == 0 {
							row.err[m][st], row.lo[m][st], row.hi[m][st] = e, e, e
						}
						row.lo[m][st], row.hi[m][st] = math.Min(row.lo[m][st], e), math.Max(row.hi[m][st], e)
					}
				}
				if seed != 0 {
					continue
				}
				row.simP99 = analysis.Summarize(sim[analysis.TTFT]).P99
				row.realP99 = analysis.Summarize(reals[0][analysis.TTFT]).P99
				for _, m := range fidelityMetrics {
					var sums []analysis.Summary
					var reruns [][]float64
					for i, r := range reals {
						sums = append(sums, analysis.Summarize(r[m]))
						if i > 0 {
							reruns = append(reruns, r[m])
						}
					}
					row.ref[m] = sums[0]
					row.band[m], row.within[m] = map[string]analysis.Band{}, map[string]bool{}
					simSum := analysis.Summarize(sim[m])
					for _, st := range fidelityStats {
						b := analysis.BandOf(sums, st)
						row.band[m][st] = b
						row.within[m][st] = b.Within(simSum.Get(st), sums[0].Get(st))
						if st == analysis.StatP99 && b.MinCount < analysis.MinTailRequests {
							continue
						}
						row.held++
						if row.within[m][st] {
							row.met++
						}
					}
					d := analysis.Distance{KS: analysis.KS(reals[0][m], sim[m]), W1: analysis.W1(reals[0][m], sim[m])}
					row.ratio[m] = d.Ratio(analysis.RerunDistance(reals[0][m], reruns)).W1
					row.held++
					if row.ratio[m] <= analysis.MaxDistanceRatio {
						row.met++
					}
				}
			}
			rows = append(rows, row)
		}
	}
	table := h200Table(rows)
	t.Logf("fit:\n%s\n%s", report, table)
	if *h200Out != "" {
		if err := os.WriteFile(*h200Out, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Regression guard at today's level: at each held-out cell the number
	// of held statistics within noise may not drop below what the model
	// reached when the table in docs/simulator.md was made, and where the
	// SLO (P99 TTFT 500 ms) breaks must stay within one grid step of the
	// real engine's in every family.
	floor := map[string]int{"bursty|5": 9, "bursty|14": 7, "bursty|24": 9, "longout|2": 3, "longout|5": 2,
		"allatonce|64": 7, "allatonce|160": 7}
	for _, r := range rows {
		key := fmt.Sprintf("%s|%v", r.fam, r.x)
		f, ok := floor[key]
		if !ok {
			t.Errorf("%s %s: no floor recorded for this cell; add it at today's level", r.fam, r.cell)
		}
		if r.met < f {
			t.Errorf("%s %s: %d of %d held statistics within noise, was %d", r.fam, r.cell, r.met, r.held, f)
		}
	}
	for _, fam := range fams[1:] {
		realBreak, simBreak := -1, -1
		i := 0
		for _, r := range rows {
			if r.fam != fam.name {
				continue
			}
			if realBreak < 0 && r.realP99 > h200SLO {
				realBreak = i
			}
			if simBreak < 0 && r.simP99 > h200SLO {
				simBreak = i
			}
			i++
		}
		if realBreak < 0 {
			realBreak = i
		}
		if simBreak < 0 {
			simBreak = i
		}
		if d := realBreak - simBreak; d > 1 || d < -1 {
			t.Errorf("%s: the SLO breaks at grid step %d in the simulation, %d on the engine", fam.name, simBreak, realBreak)
		}
	}
}

func h200Table(rows []h200Row) string {
	var b strings.Builder
	b.WriteString("| family | cell | requests | metric | stat | real (ms) | rerun band | gsim step-model | range over seeds | within noise |\n")
	b.WriteString("| --- | ---: | ---: | --- | --- | ---: | --- | ---: | --- | --- |\n")
	for _, r := range rows {
		for _, m := range fidelityMetrics {
			for _, st := range fidelityStats {
				bd := r.band[m][st]
				lo, hi := bd.Rel(r.ref[m].Get(st))
				flag := "no"
				switch {
				case st == analysis.StatP99 && bd.MinCount < analysis.MinTailRequests:
					flag = "not held (< 1,000 requests)"
					if r.within[m][st] {
						flag = "(yes) " + flag
					}
				case r.within[m][st]:
					flag = "yes"
				}
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %.1f | %+.1f…%+.1f%% | %+.1f%% | %+.0f…%+.0f%% | %s |\n",
					r.fam, r.cell, r.refN, strings.ToUpper(m), strings.ToUpper(st), r.ref[m].Get(st), 100*lo, 100*hi,
					100*r.err[m][st], 100*r.lo[m][st], 100*r.hi[m][st], flag)
			}
			ok := "no"
			if r.ratio[m] <= analysis.MaxDistanceRatio {
				ok = "yes"
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | W1 / rerun's | | | %.2f× | | %s |\n", r.fam, r.cell, r.refN, strings.ToUpper(m), r.ratio[m], ok)
		}
		fmt.Fprintf(&b, "| %s | %s | | **cell** | | | | **%d of %d held** | | |\n", r.fam, r.cell, r.met, r.held)
	}
	return b.String()
}

// TestFidelityH200BurstBatches compares the simulated and the real step
// logs of the all-at-once family step by step: under a burst, TTFT is a
// queueing and scheduling result, so the simulated engine must form the
// same batches as transformers' FIFO scheduler did (prompt chunks of the
// 8192-token budget, the same requests decoding in every step) and hold
// the same CUDA graphs at the end; only step durations may differ.
//
// The replay thread adds a burst's requests one by one (2–3 ms for 160),
// so the engine can form its first batch before the whole burst is in: the
// recorded step_detail.csv says how many requests its first step saw
// (waiting + active). The simulation then gets the arrivals the engine
// saw: the rest of the burst 1 ns later, while the first step runs.
func TestFidelityH200BurstBatches(t *testing.T) {
	fams := h200Families(t)
	fitOut, _ := h200Fit(t, fams)
	model, err := predict.ReadStepModel(filepath.Join(fitOut, StepModelFile))
	if err != nil {
		t.Fatal(err)
	}
	var burst h200Family
	for _, f := range fams {
		if f.name == "allatonce" {
			burst = f
		}
	}
	late := 0
	for _, c := range burst.cells {
		for _, run := range c.runs {
			name, _ := filepath.Rel(filepath.Dir(filepath.Dir(run)), run)
			detail, err := schema.ReadStepDetail(filepath.Join(run, schema.StepDetailFile))
			if err != nil {
				t.Fatal(err)
			}
			w, err := schema.ReadWorkload(c.wdir)
			if err != nil {
				t.Fatal(err)
			}
			cell := c
			if seen := detail[0].Waiting + detail[0].Active; seen < int64(len(w.Requests)) {
				// Requests are added in id order; those not seen by the first
				// step arrive while it runs.
				for i := range w.Requests {
					if int64(i) >= seen {
						w.Requests[i].ArrivalTimeNs = 1
						w.Requests[i].InterArrivalNs = 0
						if int64(i) == seen {
							w.Requests[i].InterArrivalNs = 1
						}
					}
				}
				cell.wdir = filepath.Join(t.TempDir(), "w")
				w.Meta.Digests = nil
				if err := schema.WriteWorkload(cell.wdir, w); err != nil {
					t.Fatal(err)
				}
				late++
				t.Logf("%s: the engine's first step saw %d of %d requests; the rest arrive 1 ns later in the simulation", name, seen, len(w.Requests))
			}
			out := h200Sim(t, burst, cell, fitOut, 0)
			real, err := schema.ReadStepMetrics(filepath.Join(run, schema.StepMetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			sim, err := schema.ReadStepMetrics(filepath.Join(out, schema.StepMetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(sim) != len(real) {
				t.Errorf("%s: %d simulated steps, %d real", name, len(sim), len(real))
			}
			bad := 0
			for i := 0; i < min(len(sim), len(real)); i++ {
				s, r := sim[i], real[i]
				s.StartNs, s.EndNs, r.StartNs, r.EndNs = 0, 0, 0, 0
				if s != r {
					if bad < 3 {
						t.Errorf("%s step %d: simulated batch %+v, real %+v", name, i, s, r)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%s: %d of %d steps formed differently", name, bad, len(real))
			}
			rm, err := schema.ReadRunMeta(filepath.Join(run, schema.RunMetaFile))
			if err != nil {
				t.Fatal(err)
			}
			phases, text := h200StepParts(t, model, run, real, detail, rm)
			t.Logf("%s, the fitted laws on the recorded steps:\n%s", name, text)
			// Regression guard at today's level: the replayed decode steps
			// within 3% of the engine (-0.1% to +1.8% when the docs were
			// written), the replayed full-budget prefill steps within 5%
			// (-2.3% to -2.9%; the fit version 3 laws were 22-38% short)
			// and the prefill captures within 10% (-1.4% to +6.8%; they
			// were 21-50% over).
			for _, g := range []struct {
				phase string
				limit float64
			}{{"decode, replayed", 0.03}, {"prefill, replayed", 0.05}, {"prefill, captures", 0.10}} {
				if d := phases[g.phase]; d.steps > 0 && math.Abs(d.model/d.real-1) > g.limit {
					t.Errorf("%s: the laws put the %s steps at %.0f ms, the engine took %.0f ms (limit %.0f%%)", name, g.phase, d.model, d.real, 100*g.limit)
				}
			}
			sm, err := schema.ReadRunMeta(filepath.Join(out, schema.RunMetaFile))
			if err != nil {
				t.Fatal(err)
			}
			realGraphs := rm.Extra["step_detail"].(map[string]any)["graphs_at_end"].([]any)
			simGraphs := sm.Engine["predictor"].(map[string]any)["graphs_cached_at_end"]
			if simGraphs != float64(len(realGraphs)) {
				t.Errorf("%s: the simulated engine holds %v CUDA graphs at the end, the real one %d", name, simGraphs, len(realGraphs))
			}
		}
	}
	// One of the four recorded processes started before its burst was in
	// (requests-160/run-1: 21 of 160); the test must keep exercising that path.
	if late == 0 {
		t.Error("no recorded run started its first step before the whole burst was added; the late-arrival path is untested")
	}
}

// h200Phase sums a phase of a recorded run against the fitted laws (ms).
type h200Phase struct {
	steps               int
	real, model         float64
	host, modelHost     float64 // replayed steps only
	device, modelDevice float64
}

// h200StepParts evaluates the fitted mechanics laws on each recorded step
// of a run (its own batch, graph key and capture flag, so the scheduler is
// out of the question) and returns the phase sums and a markdown table:
// every step of the prefill phase, then the phases summed.
func h200StepParts(t *testing.T, model *predict.StepModel, run string, steps []schema.StepMetric, detail []schema.StepDetail,
	rm *schema.RunMeta) (map[string]h200Phase, string) {
	t.Helper()
	if len(detail) != len(steps) {
		t.Fatalf("%s: %d step_detail rows for %d steps", run, len(detail), len(steps))
	}
	seen := map[[2]int64]bool{}
	wk := model.Mechanics.Graphs.WarmupKey()
	seen[[2]int64{wk.Q, wk.KV}] = true
	for _, k := range rm.Extra["step_detail"].(map[string]any)["graphs_at_start"].([]any) {
		var q, kv, sk int64
		if _, err := fmt.Sscanf(k.(string), "%dx%dx%d", &q, &kv, &sk); err != nil {
			t.Fatal(err)
		}
		seen[[2]int64{q, kv}] = true
	}
	phases := map[string]h200Phase{}
	var b strings.Builder
	b.WriteString("| step | requests (prefill) | query tokens | graph | real ms (host + device) | laws ms (host + device or capture) |\n| ---: | --- | ---: | --- | --- | --- |\n")
	for i, d := range detail {
		m := steps[i]
		shape := [2]int64{d.QPadded, d.KVPadded}
		fresh := !seen[shape]
		seen[shape] = true
		st := predict.Step{StartNs: m.StartNs, EndNs: m.EndNs, PrefillTokens: m.NumPrefillTokens, DecodeTokens: m.NumDecodeTokens,
			Requests: m.NumRequests, PrefillRequests: m.NumPrefillRequests, DecodeRequests: m.NumDecodeRequests, ContextTokens: m.NumContextTokens,
			Detail: &predict.StepDetail{Key: predict.GraphKey{Q: d.QPadded, KV: d.KVPadded, SeqK: d.SeqlenKPadded}, Hit: int8(d.GraphHit),
				FreshShape: d.GraphHit == 0 && fresh}}
		host, gpu := model.MechanicsParts(st)
		real := float64(m.EndNs-m.StartNs) / 1e6
		// The device part is the compute phase, the replay call and the
		// device wait, as the device law is fitted.
		dev := float64(d.SyncEndNs-d.ComputeStartNs) / 1e6
		name := "decode"
		if m.NumPrefillRequests > 0 {
			name = "prefill"
		}
		kind := "replayed"
		if d.GraphHit == 0 {
			kind = "capture"
			if st.Detail.FreshShape {
				kind = "capture (fresh shape)"
			}
		}
		ph := name + ", " + map[bool]string{true: "replayed", false: "captures"}[d.GraphHit == 1]
		p := phases[ph]
		p.steps++
		p.real += real
		p.model += (host + gpu) / 1e6
		if d.GraphHit == 1 {
			p.host += real - dev
			p.modelHost += host / 1e6
			p.device += dev
			p.modelDevice += gpu / 1e6
		}
		phases[ph] = p
		if name == "prefill" {
			realParts := fmt.Sprintf("%.0f (capture)", real)
			if d.GraphHit == 1 {
				realParts = fmt.Sprintf("%.0f (%.0f + %.0f)", real, real-dev, dev)
			}
			fmt.Fprintf(&b, "| %d | %d (%d) | %d | %s, %s | %s | %.0f (%.0f + %.0f) |\n", i, m.NumRequests, m.NumPrefillRequests,
				m.NumPrefillTokens+m.NumDecodeTokens, d.GraphKey, kind, realParts, (host+gpu)/1e6, host/1e6, gpu/1e6)
		}
	}
	b.WriteString("\n| phase | steps | real ms | laws ms | error | host real / laws | device real / laws |\n| --- | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, ph := range []string{"prefill, replayed", "prefill, captures", "decode, replayed", "decode, captures"} {
		p := phases[ph]
		if p.steps == 0 {
			continue
		}
		parts := "| |"
		if p.host > 0 {
			parts = fmt.Sprintf("| %.0f / %.0f | %.0f / %.0f |", p.host, p.modelHost, p.device, p.modelDevice)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %+.1f%% %s\n", ph, p.steps, p.real, p.model, 100*(p.model/p.real-1), parts)
	}
	return phases, b.String()
}

// h200LogSummary sums a step log by kind of step: replayed decode-only
// steps (host and device parts), replayed steps with prefill tokens, and
// captures; tw is the mean step duration weighted by the decode requests
// in it (what a decoding request waits per token, so about TPOT), split
// by the same kinds.
type h200LogSummary struct {
	steps                        int
	decodes, prefills, captures  int
	decodeHost, decodeDev        float64 // ms, means
	prefillMs, captureMs, busyMs float64 // ms, sums
	tw, twDecode, twPrefill      float64 // ms
	twCapture                    float64
}

func (s *h200LogSummary) add(kind string, durMs, hostMs, devMs float64, decodeReqs int64) {
	s.steps++
	s.busyMs += durMs
	w := float64(decodeReqs) * durMs
	s.tw += w
	switch kind {
	case "decode":
		s.decodes++
		s.decodeHost += hostMs
		s.decodeDev += devMs
		s.twDecode += w
	case "prefill":
		s.prefills++
		s.prefillMs += durMs
		s.twPrefill += w
	default:
		s.captures++
		s.captureMs += durMs
		s.twCapture += w
	}
}

func (s *h200LogSummary) finish(decodeTokens float64) {
	s.decodeHost /= float64(max(1, s.decodes))
	s.decodeDev /= float64(max(1, s.decodes))
	for _, p := range []*float64{&s.tw, &s.twDecode, &s.twPrefill, &s.twCapture} {
		*p /= decodeTokens
	}
}

func (s h200LogSummary) row(name string) string {
	return fmt.Sprintf("| %s | %d | %d | %.2f + %.2f | %d | %.0f | %d | %.0f | %.1f | %.2f = %.2f + %.2f + %.2f |\n", name, s.steps, s.decodes,
		s.decodeHost, s.decodeDev, s.prefills, s.prefillMs, s.captures, s.captureMs, s.busyMs/1e3, s.tw, s.twDecode, s.twPrefill, s.twCapture)
}

// TestFidelityH200StepLogs compares the simulated and the real step logs of
// every held-out run whose step logs the excerpt keeps (the all-at-once
// family and the long-output family at 2 req/s), kind of step by kind of
// step: how many decode steps and at what host and device time, how many
// prefill steps and captures and how long they took, and what a decoding
// request waits per token. The real parts come from step_detail.csv (the
// host is the step minus the compute phase); the simulated ones from the
// fitted laws on the simulated batches (a simulated step longer than its
// replay by the laws is a capture).
func TestFidelityH200StepLogs(t *testing.T) {
	fams := h200Families(t)
	fitOut, _ := h200Fit(t, fams)
	model, err := predict.ReadStepModel(filepath.Join(fitOut, StepModelFile))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| run | steps | decode steps | decode host + device (ms, mean) | prefill replays | their ms | captures | their ms | busy s | per decode token (ms) = decode + prefill + capture steps |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	checked := 0
	for _, fam := range fams[1:] {
		for _, c := range fam.cells {
			var reals []h200LogSummary
			for _, run := range c.runs {
				if !schema.Exists(filepath.Join(run, schema.StepDetailFile)) {
					continue
				}
				steps, err := schema.ReadStepMetrics(filepath.Join(run, schema.StepMetricsFile))
				if err != nil {
					t.Fatal(err)
				}
				detail, err := schema.ReadStepDetail(filepath.Join(run, schema.StepDetailFile))
				if err != nil {
					t.Fatal(err)
				}
				if len(detail) != len(steps) {
					t.Fatalf("%s: %d step_detail rows for %d steps", run, len(detail), len(steps))
				}
				var s h200LogSummary
				var tokens float64
				for i, m := range steps {
					d := detail[i]
					dur := float64(m.EndNs-m.StartNs) / 1e6
					dev := float64(d.SyncEndNs-d.ComputeStartNs) / 1e6
					kind := "decode"
					switch {
					case d.GraphHit == 0:
						kind = "capture"
					case m.NumPrefillTokens > 0:
						kind = "prefill"
					}
					s.add(kind, dur, dur-dev, dev, m.NumDecodeRequests)
					tokens += float64(m.NumDecodeRequests)
				}
				s.finish(tokens)
				reals = append(reals, s)
				name, _ := filepath.Rel(filepath.Dir(filepath.Dir(run)), run)
				b.WriteString(s.row(fam.name + " " + name))
			}
			if len(reals) == 0 {
				continue
			}
			out := h200Sim(t, fam, c, fitOut, 0)
			steps, err := schema.ReadStepMetrics(filepath.Join(out, schema.StepMetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			var s h200LogSummary
			var tokens float64
			for _, m := range steps {
				st := predict.Step{PrefillTokens: m.NumPrefillTokens, DecodeTokens: m.NumDecodeTokens, Requests: m.NumRequests,
					PrefillRequests: m.NumPrefillRequests, DecodeRequests: m.NumDecodeRequests, ContextTokens: m.NumContextTokens}
				host, dev := model.MechanicsParts(st)
				dur := float64(m.EndNs-m.StartNs) / 1e6
				kind := "decode"
				switch {
				case dur > (host+dev)/1e6+1:
					kind = "capture"
				case m.NumPrefillTokens > 0:
					kind = "prefill"
				}
				s.add(kind, dur, host/1e6, dev/1e6, m.NumDecodeRequests)
				tokens += float64(m.NumDecodeRequests)
			}
			s.finish(tokens)
			b.WriteString(s.row(fmt.Sprintf("%s %s, simulated (seed 0)", fam.name, filepath.Base(filepath.Dir(c.runs[0])))))
			checked++
			// Regression guard at today's level: the simulated decode step
			// (host + device) within 3% of the first engine process's
			// (-2.1% at 2 req/s of the long-output family, where the host
			// law is 14% short; -0.1% to +2.3% under the bursts when the
			// docs were written).
			r := reals[0]
			if e := (s.decodeHost+s.decodeDev)/(r.decodeHost+r.decodeDev) - 1; math.Abs(e) > 0.03 {
				t.Errorf("%s %v: simulated decode step %.2f ms, the engine's %.2f ms (%+.1f%%)", fam.name, c.x, s.decodeHost+s.decodeDev, r.decodeHost+r.decodeDev, 100*e)
			}
		}
	}
	t.Logf("step logs, real and simulated:\n%s", b.String())
	// Each engine process against the laws: its host time over the host
	// law's (replayed steps), and its captures' overhead beyond host and
	// device laws (median, fresh shapes and known ones) over the capture
	// law's.
	var p strings.Builder
	p.WriteString("| run | host / law | fresh captures | overhead (ms, median) | / law | known-shape captures | overhead | / law |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, fam := range fams {
		for _, c := range fam.cells {
			for _, run := range c.runs {
				if !schema.Exists(filepath.Join(run, schema.StepDetailFile)) {
					continue
				}
				name, _ := filepath.Rel(filepath.Dir(filepath.Dir(run)), run)
				p.WriteString(h200ProcessRow(t, model, fam.name+" "+name, run))
			}
		}
	}
	t.Logf("engine processes against the laws:\n%s", p.String())
	if checked == 0 {
		t.Error("no held-out run with step logs in the excerpt; the step-by-step comparison is untested")
	}
}

// h200ProcessRow is one engine process against the fitted laws (see
// TestFidelityH200StepLogs).
func h200ProcessRow(t *testing.T, model *predict.StepModel, name, run string) string {
	t.Helper()
	steps, err := schema.ReadStepMetrics(filepath.Join(run, schema.StepMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	detail, err := schema.ReadStepDetail(filepath.Join(run, schema.StepDetailFile))
	if err != nil {
		t.Fatal(err)
	}
	rm, err := schema.ReadRunMeta(filepath.Join(run, schema.RunMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	wk := model.Mechanics.Graphs.WarmupKey()
	seen := map[[2]int64]bool{{wk.Q, wk.KV}: true}
	for _, k := range rm.Extra["step_detail"].(map[string]any)["graphs_at_start"].([]any) {
		var q, kv, sk int64
		if _, err := fmt.Sscanf(k.(string), "%dx%dx%d", &q, &kv, &sk); err != nil {
			t.Fatal(err)
		}
		seen[[2]int64{q, kv}] = true
	}
	var realHost, lawHost float64
	over := map[bool][]float64{}
	law := map[bool]float64{}
	for i, m := range steps {
		d := detail[i]
		shape := [2]int64{d.QPadded, d.KVPadded}
		fresh := !seen[shape]
		seen[shape] = true
		st := predict.Step{StartNs: m.StartNs, EndNs: m.EndNs, PrefillTokens: m.NumPrefillTokens, DecodeTokens: m.NumDecodeTokens,
			Requests: m.NumRequests, PrefillRequests: m.NumPrefillRequests, DecodeRequests: m.NumDecodeRequests, ContextTokens: m.NumContextTokens,
			Detail: &predict.StepDetail{Key: predict.GraphKey{Q: d.QPadded, KV: d.KVPadded, SeqK: d.SeqlenKPadded}, Hit: 1}}
		host, dev := model.MechanicsParts(st)
		dur := float64(m.EndNs - m.StartNs)
		if d.GraphHit == 1 {
			realHost += dur - float64(d.SyncEndNs-d.ComputeStartNs)
			lawHost += host
			continue
		}
		st.Detail.Hit, st.Detail.FreshShape = 0, fresh
		_, capture := model.MechanicsParts(st)
		over[fresh] = append(over[fresh], (dur-host-dev)/1e6)
		law[fresh] = (capture - dev) / 1e6
	}
	row := fmt.Sprintf("| %s | %.2f |", name, realHost/lawHost)
	for _, fresh := range []bool{true, false} {
		xs := over[fresh]
		if len(xs) == 0 {
			row += " 0 | | |"
			continue
		}
		slices.Sort(xs)
		m := xs[len(xs)/2]
		row += fmt.Sprintf(" %d | %.0f | %.2f |", len(xs), m, m/law[fresh])
	}
	return row + "\n"
}
