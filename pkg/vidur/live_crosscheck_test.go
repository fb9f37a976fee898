package vidur_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/vidur"
	"github.com/gsim-dev/gsim/pkg/workload"
)

var record = flag.Bool("record", false, "with GSIM_VIDUR: rewrite testdata/vidur/crosscheck from the live runs")

// crossDir holds the recorded cases of the scheduling cross-check.
const crossDir = "../../testdata/vidur/crosscheck"

// xcase is one scheduling cross-check: a workload and the vidur stage's
// params; the sim stage's are the same knobs plus what Vidur derived
// (simParams). Pressure cases must make
// Vidur preempt (vllm, sarathi) or queue for blocks (orca, which reserves
// every request's whole length up front and never preempts).
type xcase struct {
	Name     string         `json:"name"`
	Workload map[string]any `json:"workload"`
	Vidur    map[string]any `json:"vidur"`
	// Restarts and PrefillCut are the least the Vidur run must show
	// (restarts in all; requests restarted part-way through their first
	// prefill).
	MinRestarts   int64 `json:"min_restarts"`
	MinPrefillCut int   `json:"min_prefill_cut"`
	// LiveOnly cases are too big to record.
	LiveOnly bool `json:"-"`
}

// smallWorkload is the recorded cases' workload: bursty arrivals that
// fill a small pool.
func smallWorkload() map[string]any {
	return map[string]any{"model": "Qwen/Qwen3-0.6B", "seed": 7, "num_requests": 60,
		"arrival": map[string]any{"process": "gamma", "rate": 8, "burstiness": 0.5},
		"prefill": map[string]any{"dist": "lognormal", "mean": 300, "std": 250, "min": 16, "max": 1024},
		"decode":  map[string]any{"dist": "lognormal", "mean": 60, "std": 40, "min": 8, "max": 256}}
}

func crossCases() []xcase {
	common := func(extra map[string]any) map[string]any {
		m := map[string]any{"block_size": 256, "max_tokens": 2048, "batch_size_cap": 32}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	orca := func(extra map[string]any) map[string]any {
		m := common(extra)
		m["batch_size_cap"] = 16 // orca's tables cover max_tokens × cap tokens
		return m
	}
	return []xcase{
		{Name: "vllm", Workload: smallWorkload(), Vidur: common(map[string]any{"scheduler": "vllm", "max_batch_tokens": 2048})},
		{Name: "vllm-preempting", Workload: smallWorkload(), Vidur: common(map[string]any{"scheduler": "vllm", "max_batch_tokens": 2048, "num_blocks": 10}),
			MinRestarts: 1},
		{Name: "sarathi", Workload: smallWorkload(), Vidur: common(map[string]any{"scheduler": "sarathi", "chunk_size": 256})},
		{Name: "sarathi-preempting", Workload: smallWorkload(), Vidur: common(map[string]any{"scheduler": "sarathi", "chunk_size": 256, "num_blocks": 8}),
			MinRestarts: 1, MinPrefillCut: 1},
		{Name: "orca", Workload: smallWorkload(), Vidur: orca(map[string]any{"scheduler": "orca"})},
		{Name: "orca-pressure", Workload: smallWorkload(), Vidur: orca(map[string]any{"scheduler": "orca", "num_blocks": 24})},
		// The reproduction of the failure that made restarts part-way
		// through a prefill matter (500 requests, ~15k batches: live only).
		{Name: "sarathi-issue", LiveOnly: true, MinRestarts: 1, MinPrefillCut: 1,
			Workload: map[string]any{"model": "Qwen/Qwen3-0.6B", "seed": 7, "num_requests": 500,
				"arrival": map[string]any{"process": "gamma", "rate": 5, "burstiness": 0.5},
				"prefill": map[string]any{"dist": "lognormal", "mean": 300, "std": 250, "min": 16, "max": 2048},
				"decode":  map[string]any{"dist": "lognormal", "mean": 150, "std": 100, "min": 8, "max": 512}},
			Vidur: map[string]any{"scheduler": "sarathi", "block_size": 256, "num_blocks": 16}},
	}
}

// simParams are the embedded simulator's params for a Vidur run: the
// case's knobs, and what Vidur derived (num_blocks; for orca the max batch
// size, min(memory's, batch_size_cap)).
func simParams(c xcase, engine map[string]any) map[string]any {
	sp := map[string]any{"interpolation": "vidur-table"}
	for _, k := range []string{"scheduler", "block_size", "max_tokens", "batch_size_cap", "max_batch_tokens", "chunk_size", "watermark"} {
		if v, ok := c.Vidur[k]; ok {
			sp[k] = v
		}
	}
	if _, ok := sp["max_tokens"]; !ok {
		sp["max_tokens"] = engine["max_tokens"]
	}
	if _, ok := sp["max_batch_tokens"]; !ok && c.Vidur["scheduler"] == "vllm" {
		sp["max_batch_tokens"] = engine["max_tokens"]
	}
	sp["batch_size_cap"] = engine["batch_size_cap"]
	if c.Vidur["scheduler"] == "orca" {
		sp["batch_size_cap"] = engine["max_batch_size"]
	}
	sp["num_blocks"] = engine["num_blocks"]
	return sp
}

func writeCaseWorkload(t *testing.T, params map[string]any) (string, *schema.Workload) {
	t.Helper()
	p, err := workload.DecodeParams(params)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := filepath.Abs("../..")
	w, err := workload.Generate(p, base)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := schema.WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	return dir, w
}

func testLog() io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

// runEmbedded runs the sim kind on workDir with params, Vidur's tables in
// tables, into a new folder.
func runEmbedded(t *testing.T, workDir, tables string, params map[string]any) string {
	t.Helper()
	base, _ := filepath.Abs("../..")
	p := map[string]any{"vidur_tables": tables}
	for k, v := range params {
		p[k] = v
	}
	out := t.TempDir()
	k := sim.NewKind()
	if err := k.CheckParams(p); err != nil {
		t.Fatal(err)
	}
	if err := k.Run(context.Background(), &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: base, Stage: "embedded",
		Instance: "embedded", Kind: "sim", Params: p, OutDir: out,
		Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: workDir}}}}, stage.Env{Log: testLog()}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameRun requires got to be the Vidur run ref: the same batches (shapes,
// in order) and every request's first token and completion within
// vidur.Tolerance (1 µs; Vidur keeps float seconds, gsim integer ns).
func sameRun(t *testing.T, ref, got string) {
	t.Helper()
	r, err := schema.ReadRun(ref)
	if err != nil {
		t.Fatal(err)
	}
	g, err := schema.ReadRun(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Steps) != len(g.Steps) {
		t.Errorf("%d iterations, Vidur ran %d", len(g.Steps), len(r.Steps))
	}
	for i := range min(len(r.Steps), len(g.Steps)) {
		a, b := r.Steps[i], g.Steps[i]
		if a.NumPrefillTokens != b.NumPrefillTokens || a.NumDecodeTokens != b.NumDecodeTokens || a.NumRequests != b.NumRequests ||
			a.NumContextTokens != b.NumContextTokens {
			t.Fatalf("iteration %d: gsim's batch (prefill %d, decode %d tokens, %d requests, context %d) is not Vidur's (%d, %d, %d, %d)",
				i, b.NumPrefillTokens, b.NumDecodeTokens, b.NumRequests, b.NumContextTokens,
				a.NumPrefillTokens, a.NumDecodeTokens, a.NumRequests, a.NumContextTokens)
		}
	}
	byID := map[int64]schema.RequestMetric{}
	for _, x := range g.Requests {
		byID[x.RequestID] = x
	}
	var worst int64
	for _, x := range r.Requests {
		y, ok := byID[x.RequestID]
		if !ok {
			t.Fatalf("request %d: not simulated", x.RequestID)
		}
		worst = max(worst, abs(y.FirstTokenTimeNs-x.FirstTokenTimeNs), abs(y.CompletionTimeNs-x.CompletionTimeNs))
	}
	t.Logf("%d iterations, %d requests; largest request time difference %d ns (allowed %d)", len(r.Steps), len(r.Requests), worst, vidur.Tolerance)
	if worst > vidur.Tolerance {
		t.Errorf("request times differ by up to %d ns", worst)
	}
}

// TestLiveVidurMatchesEmbedded runs real Vidur, then the embedded simulator
// on the same workload and settings timed by the prediction tables that
// Vidur run exported (interpolation: vidur-table), and requires the same
// run (sameRun), for vllm, sarathi and orca, with and without memory
// pressure. With -record it rewrites testdata/vidur/crosscheck, which
// TestRecordedVidurMatchesEmbedded checks without Vidur. Needs GSIM_VIDUR
// (docs/vidur.md).
func TestLiveVidurMatchesEmbedded(t *testing.T) {
	if os.Getenv("GSIM_VIDUR") == "" {
		t.Skip("GSIM_VIDUR not set: point it at a microsoft/vidur checkout to run real Vidur (docs/vidur.md); " +
			"TestRecordedVidurMatchesEmbedded checks the recorded cases without it")
	}
	prof := liveProfile(t)
	base, _ := filepath.Abs("../..")
	if *record {
		// The cases and tables are rewritten; README.md stays.
		dirs, _ := filepath.Glob(filepath.Join(crossDir, "*", ""))
		for _, d := range dirs {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				if err := os.RemoveAll(d); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, c := range crossCases() {
		t.Run(c.Name, func(t *testing.T) {
			workDir, w := writeCaseWorkload(t, c.Workload)
			vp := map[string]any{"profile": prof}
			for k, v := range c.Vidur {
				vp[k] = v
			}
			vout := t.TempDir()
			k := vidur.NewKind()
			if err := k.Run(context.Background(), &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: base, Stage: "vidur",
				Instance: "vidur", Kind: "vidur", Params: vp, OutDir: vout,
				Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: workDir}}}}, stage.Env{Log: testLog()}); err != nil {
				t.Fatal(err)
			}
			ref, err := schema.ReadRun(vout)
			if err != nil {
				t.Fatal(err)
			}
			e := ref.Meta.Engine
			restarts, cut := int64(e["restarts"].(float64)), int(e["prefill_cut_restarts"].(float64))
			t.Logf("%s: Vidur %d iterations, %d restarts, %d requests restarted part-way through their first prefill",
				c.Name, len(ref.Steps), restarts, cut)
			if restarts < c.MinRestarts || cut < c.MinPrefillCut {
				t.Fatalf("the case must make Vidur restart at least %d times (%d part-way through a first prefill); it did %d (%d): tighten num_blocks",
					c.MinRestarts, c.MinPrefillCut, restarts, cut)
			}
			sp := simParams(c, e)
			tables := filepath.Join(vout, vidur.RawDir, vidur.RawPredictionsDir)
			got := runEmbedded(t, workDir, tables, sp)
			sameRun(t, vout, got)
			if *record && !c.LiveOnly && !t.Failed() {
				recordCase(t, c, w, workDir, vout, sp, restarts, cut)
			}
		})
	}
}

// recorded is a case as testdata/vidur/crosscheck/<name>/case.json keeps it.
type recorded struct {
	xcase
	WorkloadDigest string         `json:"workload_digest"`
	SimParams      map[string]any `json:"sim_params"`
	Tables         string         `json:"tables"`
	Iterations     int            `json:"iterations"`
	Restarts       int64          `json:"restarts"`
	PrefillCut     int            `json:"prefill_cut_restarts"`
	VidurCommit    string         `json:"vidur_commit"`
	VidurSource    string         `json:"vidur_source"`
}

// recordCase keeps what the recorded check needs: Vidur's own outputs
// (request_metrics.csv cut to the columns gsim reads, the chrome trace,
// the shim's restart log) and the prediction tables, shared between cases
// whose tables are identical.
func recordCase(t *testing.T, c xcase, w *schema.Workload, workDir, vout string, sp map[string]any, restarts int64, cut int) {
	t.Helper()
	dir := filepath.Join(crossDir, c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(vout, vidur.RawDir)
	tables := filepath.Join(raw, vidur.RawPredictionsDir)
	td, err := stage.DirDigest(tables)
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(crossDir, "tables", td[:12])
	if _, err := os.Stat(shared); err != nil {
		copyDir(t, tables, shared)
	}
	trimRequests(t, filepath.Join(raw, vidur.VidurRequestMetricsFile), filepath.Join(dir, vidur.VidurRequestMetricsFile))
	trimTrace(t, filepath.Join(raw, vidur.RawChromeTraceFile), filepath.Join(dir, vidur.RawChromeTraceFile))
	copyFile(t, filepath.Join(raw, vidur.RawRestartsFile), filepath.Join(dir, vidur.RawRestartsFile))
	digest, err := schema.WorkloadDigest(workDir)
	if err != nil {
		t.Fatal(err)
	}
	run, err := schema.ReadRun(vout)
	if err != nil {
		t.Fatal(err)
	}
	commit, _ := run.Meta.Engine["vidur_commit"].(string)
	source, _ := run.Meta.Engine["vidur_source"].(string)
	rec := recorded{xcase: c, WorkloadDigest: digest, SimParams: sp, Tables: "../tables/" + td[:12],
		Iterations: len(run.Steps), Restarts: restarts, PrefillCut: cut, VidurCommit: commit, VidurSource: source}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "case.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d requests)", dir, len(w.Requests))
}

// TestRecordedVidurMatchesEmbedded is TestLiveVidurMatchesEmbedded on the
// recorded cases, without Vidur: it converts each case's Vidur outputs
// (with its restart log), runs the embedded simulator on the regenerated
// workload with the recorded tables, and requires the same run.
func TestRecordedVidurMatchesEmbedded(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(crossDir, "*", "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range crossCases() {
		if !c.LiveOnly {
			names = append(names, c.Name)
		}
	}
	if len(files) != len(names) {
		t.Fatalf("%d recorded cases in %s, want %d (%v): record them with GSIM_VIDUR=<checkout> go test ./pkg/vidur -run LiveVidurMatches -record",
			len(files), crossDir, len(names), names)
	}
	for _, f := range files {
		var rec recorded
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		t.Run(rec.Name, func(t *testing.T) {
			if !slices.Contains(names, rec.Name) {
				t.Fatalf("%s: no such case in crossCases", f)
			}
			dir := filepath.Dir(f)
			workDir, w := writeCaseWorkload(t, rec.Workload)
			if d, err := schema.WorkloadDigest(workDir); err != nil || d != rec.WorkloadDigest {
				t.Fatalf("the case's workload regenerates as %s (%v), recorded %s: the generator changed; re-record", d, err, rec.WorkloadDigest)
			}
			conv, err := vidur.ConvertOutput(dir, w.Requests)
			if err != nil {
				t.Fatal(err)
			}
			if len(conv.Steps) != rec.Iterations || conv.Restarts != rec.Restarts || conv.PrefillCut != rec.PrefillCut {
				t.Fatalf("converted: %d iterations, %d restarts, %d cut; recorded %d, %d, %d",
					len(conv.Steps), conv.Restarts, conv.PrefillCut, rec.Iterations, rec.Restarts, rec.PrefillCut)
			}
			if conv.Restarts < rec.MinRestarts || conv.PrefillCut < rec.MinPrefillCut {
				t.Fatalf("the recording has %d restarts (%d cut), the case needs %d (%d)", conv.Restarts, conv.PrefillCut, rec.MinRestarts, rec.MinPrefillCut)
			}
			ref := t.TempDir()
			if err := conv.WriteRun(ref, &schema.RunMeta{RunID: rec.Name, RunType: schema.RunVidur, Model: w.Meta.Model, WorkloadDigest: rec.WorkloadDigest}); err != nil {
				t.Fatal(err)
			}
			tables, _ := filepath.Abs(filepath.Join(dir, rec.Tables))
			got := runEmbedded(t, workDir, tables, rec.SimParams)
			sameRun(t, ref, got)
		})
	}
}

func trimRequests(t *testing.T, src, dst string) {
	t.Helper()
	reqs, err := vidur.ReadRequests(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, "Request Id,request_e2e_time,prefill_e2e_time,request_scheduling_delay,request_num_prefill_tokens,request_num_decode_tokens,request_num_restarts")
	for _, r := range reqs {
		fmt.Fprintf(f, "%d,%s,%s,%s,%d,%d,%d\n", r.ID, fmtFloat(r.E2E), fmtFloat(r.PrefillE2E), fmtFloat(r.SchedulingDelay),
			r.NumPrefillTokens, r.NumDecodeTokens, r.NumRestarts)
	}
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// trimTrace keeps of Vidur's chrome trace the batch events and of each the
// fields gsim reads, values untouched (Vidur's float µs, its float token
// counts), gzipped.
func trimTrace(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		TraceEvents []struct {
			Ph   string          `json:"ph"`
			Ts   json.RawMessage `json:"ts"`
			Dur  json.RawMessage `json:"dur"`
			Pid  json.RawMessage `json:"pid"`
			Tid  json.RawMessage `json:"tid"`
			Args struct {
				BatchID    json.RawMessage `json:"batch_id"`
				RequestIDs json.RawMessage `json:"request_ids"`
				NumTokens  json.RawMessage `json:"num_tokens"`
			} `json:"args"`
		} `json:"traceEvents"`
	}
	if err := json.NewDecoder(zr).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	keep := tr.TraceEvents[:0]
	for _, e := range tr.TraceEvents {
		if e.Ph == "X" && e.Args.BatchID != nil {
			keep = append(keep, e)
		}
	}
	tr.TraceEvents = keep
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
