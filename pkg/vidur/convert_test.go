package vidur

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

var update = flag.Bool("update", false, "rewrite golden files and the sample's derived workload")

// sampleDir is a real Vidur output folder (see its README in
// shared/fixtures/vidur-output-sample): Qwen2-7B on an A30 profile, 1000
// requests, vllm scheduler.
const sampleDir = "../../testdata/vidur/sample"

func readSample(t *testing.T) ([]Request, []Batch) {
	t.Helper()
	vreqs, err := ReadRequests(filepath.Join(sampleDir, VidurRequestMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	batches, err := ReadChromeTrace(filepath.Join(sampleDir, RawChromeTraceFile))
	if err != nil {
		t.Fatal(err)
	}
	return vreqs, batches
}

// sampleWorkload is the workload the sample replayed. Vidur generated its
// arrivals itself (Poisson), so they are derived from its outputs once, with
// -update: arrival = end of the batch completing the prefill - prefill_e2e_time.
func sampleWorkload(t *testing.T, vreqs []Request, batches []Batch) *schema.Workload {
	t.Helper()
	dir := filepath.Join(sampleDir, "workload")
	if *update {
		firstEnd := map[int64]float64{}
		done := map[int64]int64{}
		for _, b := range batches {
			for k, id := range b.RequestIDs {
				if _, ok := firstEnd[id]; ok {
					continue
				}
				done[id] += b.NumTokens[k]
				if done[id] == vreqs[id].NumPrefillTokens {
					firstEnd[id] = b.EndUs()
				}
			}
		}
		w := &schema.Workload{Meta: schema.WorkloadMeta{Model: "Qwen/Qwen2-7B", Generator: "vidur-sample (derived)",
			CreatedAt: "2026-11-26T19:34:13Z"}}
		var prev int64
		for _, v := range vreqs {
			arr := MicrosToNs(firstEnd[v.ID]) - SecondsToNs(v.PrefillE2E)
			w.Requests = append(w.Requests, schema.Request{ID: v.ID, PromptID: v.ID, NumPrefillTokens: v.NumPrefillTokens,
				NumDecodeTokens: v.NumDecodeTokens, InterArrivalNs: arr - prev, ArrivalTimeNs: arr})
			prev = arr
		}
		if err := schema.WriteWorkload(dir, w); err != nil {
			t.Fatal(err)
		}
	}
	w, err := schema.ReadWorkload(dir)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestConvertSample(t *testing.T) {
	vreqs, batches := readSample(t)
	w := sampleWorkload(t, vreqs, batches)
	conv, err := Convert(w.Requests, &Output{Requests: vreqs, Batches: batches})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	digest, err := schema.WorkloadDigest(filepath.Join(sampleDir, "workload"))
	if err != nil {
		t.Fatal(err)
	}
	meta := &schema.RunMeta{RunID: "sample", RunType: schema.RunVidur, Model: "Qwen/Qwen2-7B", WorkloadDigest: digest}
	if err := conv.WriteRun(out, meta); err != nil {
		t.Fatal(err)
	}
	// The canonical reader's cross-checks: token counts, token 0 = first
	// token time, last token = completion, latencies = gaps.
	run, err := schema.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("invariants", func(t *testing.T) {
		ends := map[int64]bool{}
		for _, b := range batches {
			ends[MicrosToNs(b.EndUs())] = true
		}
		for _, tk := range run.Tokens {
			if !ends[tk.TokenTimeNs] {
				t.Fatalf("request %d token %d at %d ns is no batch's end (tokens must not be interpolated)", tk.RequestID, tk.TokenIndex, tk.TokenTimeNs)
			}
		}
		var prefill, decode, steps int64
		for _, s := range run.Steps {
			prefill += s.NumPrefillTokens
			decode += s.NumDecodeTokens
			steps++
		}
		var wantPrefill, wantDecode int64
		for i, r := range run.Requests {
			if r.RequestID != int64(i) {
				t.Fatalf("row %d is request %d (expected id order)", i, r.RequestID)
			}
			if r.ArrivalTimeNs != w.Requests[i].ArrivalTimeNs {
				t.Fatalf("request %d: arrival %d, the workload says %d", i, r.ArrivalTimeNs, w.Requests[i].ArrivalTimeNs)
			}
			// TTFT is Vidur's prefill_e2e_time, E2E its request_e2e_time (s -> ns),
			// equal up to the two ns roundings of the derived arrival.
			if d := float64(r.TTFTNs) - vreqs[i].PrefillE2E*1e9; math.Abs(d) > 2 {
				t.Fatalf("request %d: ttft %d ns vs prefill_e2e_time %v s", i, r.TTFTNs, vreqs[i].PrefillE2E)
			}
			if d := float64(r.CompletionTimeNs-r.ArrivalTimeNs) - vreqs[i].E2E*1e9; math.Abs(d) > 2 {
				t.Fatalf("request %d: e2e %d ns vs request_e2e_time %v s", i, r.CompletionTimeNs-r.ArrivalTimeNs, vreqs[i].E2E)
			}
			wantPrefill += r.NumPrefillTokens
			wantDecode += r.NumDecodeTokens - 1 // token 0 comes from the prefill batch
		}
		if steps != int64(len(batches)) || prefill != wantPrefill || decode != wantDecode {
			t.Fatalf("steps %d (want %d batches), prefill tokens %d (want %d), decode tokens %d (want %d)",
				steps, len(batches), prefill, wantPrefill, decode, wantDecode)
		}
	})

	t.Run("golden", func(t *testing.T) {
		golden(t, "sample/request_metrics.csv", readFile(t, filepath.Join(out, schema.RequestMetricsFile)))
		// Tokens and steps in full are megabytes: keep the first requests'
		// tokens and the first steps, which cover prefill, batching and decode.
		golden(t, "sample/token_metrics_head.csv", filterLines(readFile(t, filepath.Join(out, schema.TokenMetricsFile)),
			func(i int, line string) bool { return i == 0 || hasRequestPrefix(line, "0", "1", "2", "7") }))
		golden(t, "sample/step_metrics_head.csv", filterLines(readFile(t, filepath.Join(out, schema.StepMetricsFile)),
			func(i int, _ string) bool { return i <= 60 }))
	})
}

func hasRequestPrefix(line string, ids ...string) bool {
	for _, id := range ids {
		if strings.HasPrefix(line, id+",") {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func filterLines(b []byte, keep func(i int, line string) bool) []byte {
	var out bytes.Buffer
	for i, l := range strings.SplitAfter(string(b), "\n") {
		if l != "" && keep(i, l) {
			out.WriteString(l)
		}
	}
	return out.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/vidur -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s", p, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s differs: %d lines, want %d", p, len(gl), len(wl))
	}
}

// A hand-made run with exact numbers: two requests, the second batched with
// the first's decode, times in Vidur's float units.
func TestConvertUnitsAndTokenRule(t *testing.T) {
	work := []schema.Request{
		{ID: 10, NumPrefillTokens: 4, NumDecodeTokens: 3, ArrivalTimeNs: 500_000_000},
		{ID: 11, NumPrefillTokens: 2, NumDecodeTokens: 2, ArrivalTimeNs: 550_000_000},
	}
	batches := []Batch{
		{ID: 0, StartUs: 500_000, DurUs: 100_000, RequestIDs: []int64{0}, NumTokens: []int64{4}},        // r0 prefill: token 0 at 0.6 s
		{ID: 1, StartUs: 600_000, DurUs: 20_000.5, RequestIDs: []int64{0, 1}, NumTokens: []int64{1, 2}}, // r0 token 1, r1 prefill
		{ID: 2, StartUs: 620_000.5, DurUs: 10_000, RequestIDs: []int64{0, 1}, NumTokens: []int64{1, 1}}, // r0 token 2 (done), r1 token 1
	}
	vreqs := []Request{
		{ID: 0, PrefillE2E: 0.1, E2E: 0.1300005, NumPrefillTokens: 4, NumDecodeTokens: 3},
		{ID: 1, PrefillE2E: 0.0700005, E2E: 0.0800005, NumPrefillTokens: 2, NumDecodeTokens: 2},
	}
	c, err := Convert(work, &Output{Requests: vreqs, Batches: batches})
	if err != nil {
		t.Fatal(err)
	}
	wantReq := []schema.RequestMetric{
		{RequestID: 10, ArrivalTimeNs: 500_000_000, FirstTokenTimeNs: 600_000_000, TTFTNs: 100_000_000, CompletionTimeNs: 630_000_500,
			NumPrefillTokens: 4, NumDecodeTokens: 3, NumDecodeTokensActual: 3, Status: "ok"},
		{RequestID: 11, ArrivalTimeNs: 550_000_000, FirstTokenTimeNs: 620_000_500, TTFTNs: 70_000_500, CompletionTimeNs: 630_000_500,
			NumPrefillTokens: 2, NumDecodeTokens: 2, NumDecodeTokensActual: 2, Status: "ok"},
	}
	for i := range wantReq {
		if c.Requests[i] != wantReq[i] {
			t.Errorf("request %d:\n got %+v\nwant %+v", i, c.Requests[i], wantReq[i])
		}
	}
	wantTok := [][]int64{{600_000_000, 620_000_500, 630_000_500}, {620_000_500, 630_000_500}}
	for i := range wantTok {
		if !slicesEqual(c.TokenTimesNs[i], wantTok[i]) {
			t.Errorf("request %d tokens %v, want %v", i, c.TokenTimesNs[i], wantTok[i])
		}
	}
	wantSteps := []schema.StepMetric{
		{Step: 0, StartNs: 500_000_000, EndNs: 600_000_000, NumPrefillTokens: 4, NumRequests: 1, NumPrefillRequests: 1, NumContextTokens: 4},
		{Step: 1, StartNs: 600_000_000, EndNs: 620_000_500, NumPrefillTokens: 2, NumDecodeTokens: 1, NumRequests: 2,
			NumPrefillRequests: 1, NumDecodeRequests: 1, NumContextTokens: 5 + 2},
		{Step: 2, StartNs: 620_000_500, EndNs: 630_000_500, NumDecodeTokens: 2, NumRequests: 2, NumDecodeRequests: 2, NumContextTokens: 6 + 3},
	}
	for i := range wantSteps {
		if c.Steps[i] != wantSteps[i] {
			t.Errorf("step %d:\n got %+v\nwant %+v", i, c.Steps[i], wantSteps[i])
		}
	}
}

// Vidur restarts a preempted request: it prefills prompt + generated tokens
// again, and the batch completing that yields the next token.
func TestConvertRestart(t *testing.T) {
	work := []schema.Request{{ID: 0, NumPrefillTokens: 3, NumDecodeTokens: 4, ArrivalTimeNs: 0}}
	b := func(id int64, start, dur float64, tok int64) Batch {
		return Batch{ID: id, StartUs: start, DurUs: dur, RequestIDs: []int64{0}, NumTokens: []int64{tok}}
	}
	batches := []Batch{
		b(0, 0, 10, 3),  // token 0 at 10 µs
		b(1, 10, 5, 1),  // token 1 at 15
		b(2, 40, 10, 5), // restart: 3 prompt + 2 generated; token 2 at 50
		b(3, 50, 5, 1),  // token 3 at 55
	}
	vreqs := []Request{{ID: 0, PrefillE2E: 10e-6, E2E: 55e-6, NumPrefillTokens: 3, NumDecodeTokens: 4, NumRestarts: 1}}
	c, err := Convert(work, &Output{Requests: vreqs, Batches: batches})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{10_000, 15_000, 50_000, 55_000}; !slicesEqual(c.TokenTimesNs[0], want) {
		t.Fatalf("tokens %v, want %v", c.TokenTimesNs[0], want)
	}
	if c.Steps[2].NumPrefillTokens != 5 || c.Steps[2].NumContextTokens != 5 || c.Steps[3].NumContextTokens != 6 {
		t.Fatalf("restart steps: %+v %+v", c.Steps[2], c.Steps[3])
	}
	// Without a recorded restart the same trace is inconsistent.
	vreqs[0].NumRestarts = 0
	if _, err := Convert(work, &Output{Requests: vreqs, Batches: batches}); err == nil || !strings.Contains(err.Error(), "no (further) restart") {
		t.Fatalf("want a no-restart error, got %v", err)
	}
	// With the shim's log the restart is taken from it, not inferred.
	vreqs[0].NumRestarts = 1
	log := []Restart{{BatchID: 2, RequestID: 0, Processed: 5}}
	c2, err := Convert(work, &Output{Requests: vreqs, Batches: batches, Restarts: log, RestartsRecorded: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(c2.TokenTimesNs[0], c.TokenTimesNs[0]) || c2.Restarts != 1 || c2.PrefillCut != 0 {
		t.Fatalf("logged restart: tokens %v, %d restarts, %d cut", c2.TokenTimesNs[0], c2.Restarts, c2.PrefillCut)
	}
	// A log that disagrees with the trace is refused.
	bad := []Restart{{BatchID: 2, RequestID: 0, Processed: 4}}
	if _, err := Convert(work, &Output{Requests: vreqs, Batches: batches, Restarts: bad, RestartsRecorded: true}); err == nil ||
		!strings.Contains(err.Error(), "had processed 4 tokens, the chrome trace gives 5") {
		t.Fatalf("want a log/trace mismatch error, got %v", err)
	}
	// A logged run with a re-prefill the log does not explain is refused.
	if _, err := Convert(work, &Output{Requests: vreqs, Batches: batches, RestartsRecorded: true}); err == nil ||
		!strings.Contains(err.Error(), "records no restart") {
		t.Fatalf("want a no-logged-restart error, got %v", err)
	}
}

// Vidur's sarathi restarts a request part-way through its chunked prefill:
// Request.restart() makes the tokens processed so far its new prompt, so the
// re-prefill is that long, Vidur marks the prefill complete (and counts a
// token) when it ends, and the rest of the real prompt is then processed one
// token per iteration as decodes. The first real token comes when Vidur's
// counter passes the whole prompt; Vidur's prefill_e2e_time is the end of
// the shortened re-prefill.
func TestConvertRestartMidPrefill(t *testing.T) {
	// Prompt 6, 3 output tokens: total 9.
	work := []schema.Request{{ID: 0, NumPrefillTokens: 6, NumDecodeTokens: 3, ArrivalTimeNs: 0}}
	b := func(id int64, start, dur float64, tok int64) Batch {
		return Batch{ID: id, StartUs: start, DurUs: dur, RequestIDs: []int64{0}, NumTokens: []int64{tok}}
	}
	batches := []Batch{
		b(0, 0, 10, 4),  // chunk of 4 of 6 (done 4)
		b(1, 30, 10, 2), // after the restart: re-prefill of the 4 processed, in chunks 2 + 2
		b(2, 40, 10, 2), // re-prefill complete: Vidur counts 5 (prefill_e2e_time = 50 µs)
		b(3, 50, 10, 1), // prompt token 6 as a "decode": counter 6
		b(4, 60, 10, 1), // counter 7 > 6: token 0 at 70 µs
		b(5, 70, 10, 1), // token 1 at 80
		b(6, 80, 10, 1), // token 2 at 90: counter 9 = total, done
	}
	vreqs := []Request{{ID: 0, PrefillE2E: 50e-6, E2E: 90e-6, NumPrefillTokens: 6, NumDecodeTokens: 3, NumRestarts: 1}}
	log := []Restart{{BatchID: 1, RequestID: 0, Processed: 4}}
	c, err := Convert(work, &Output{Requests: vreqs, Batches: batches, Restarts: log, RestartsRecorded: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{70_000, 80_000, 90_000}; !slicesEqual(c.TokenTimesNs[0], want) {
		t.Fatalf("tokens %v, want %v", c.TokenTimesNs[0], want)
	}
	if c.PrefillCut != 1 || c.Restarts != 1 || c.Requests[0].TTFTNs != 70_000 {
		t.Fatalf("cut %d, restarts %d, ttft %d", c.PrefillCut, c.Restarts, c.Requests[0].TTFTNs)
	}
	// Steps: 3 prefill iterations, then decodes at contexts 5, 6, 7, 8.
	wantPre := []int64{4, 2, 2, 0, 0, 0, 0}
	wantCtx := []int64{4, 2, 4, 5, 6, 7, 8}
	for i, st := range c.Steps {
		if st.NumPrefillTokens != wantPre[i] || st.NumContextTokens != wantCtx[i] || (wantPre[i] == 0) != (st.NumDecodeTokens == 1) {
			t.Errorf("step %d: %+v, want prefill %d context %d", i, st, wantPre[i], wantCtx[i])
		}
	}
	// The old reading (prompt + generated) cannot explain it: without the
	// log the conversion says what is missing instead of miscounting.
	_, err = Convert(work, &Output{Requests: vreqs, Batches: batches})
	if err == nil || !strings.Contains(err.Error(), "no restart log") || !strings.Contains(err.Error(), RawRestartsFile) {
		t.Fatalf("want the unlogged mid-prefill restart error, got %v", err)
	}
}

func TestReadRestarts(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "restarts.csv")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := ReadRestarts(write("batch_id,request_id,num_processed_tokens\n7,3,406\n9,1,12\n"))
	if err != nil || len(got) != 2 || got[0] != (Restart{BatchID: 7, RequestID: 3, Processed: 406}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for body, want := range map[string]string{
		"a,b,c\n": "expected",
		"batch_id,request_id,num_processed_tokens\n1,x,3\n":  `row 2, column "request_id"`,
		"batch_id,request_id,num_processed_tokens\n1,-2,3\n": "non-negative",
		"": "no header",
	} {
		if _, err := ReadRestarts(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", body, err, want)
		}
	}
}

func TestConvertRejects(t *testing.T) {
	work := []schema.Request{{ID: 0, NumPrefillTokens: 2, NumDecodeTokens: 2, ArrivalTimeNs: 1000}}
	okBatches := []Batch{
		{ID: 0, StartUs: 1, DurUs: 1, RequestIDs: []int64{0}, NumTokens: []int64{2}},
		{ID: 1, StartUs: 2, DurUs: 1, RequestIDs: []int64{0}, NumTokens: []int64{1}},
	}
	okReq := Request{ID: 0, PrefillE2E: 1e-6, E2E: 2e-6, NumPrefillTokens: 2, NumDecodeTokens: 2}
	if _, err := Convert(work, &Output{Requests: []Request{okReq}, Batches: okBatches}); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	tests := []struct {
		name    string
		reqs    []Request
		batches []Batch
		want    string
	}{
		{"clipped prompt", []Request{{ID: 0, PrefillE2E: 1e-6, E2E: 2e-6, NumPrefillTokens: 1, NumDecodeTokens: 2}}, okBatches, "max_tokens"},
		{"missing request", nil, okBatches, "wrote 0 requests"},
		{"truncated trace", []Request{okReq}, okBatches[:1], "yields 1 tokens"},
		{"ttft disagrees", []Request{{ID: 0, PrefillE2E: 5e-6, E2E: 2e-6, NumPrefillTokens: 2, NumDecodeTokens: 2}}, okBatches, "prefill_e2e_time"},
		{"e2e disagrees", []Request{{ID: 0, PrefillE2E: 1e-6, E2E: 9e-6, NumPrefillTokens: 2, NumDecodeTokens: 2}}, okBatches, "request_e2e_time"},
		{"unknown request", []Request{okReq}, append(okBatches[:1:1], Batch{ID: 1, StartUs: 2, DurUs: 1, RequestIDs: []int64{5}, NumTokens: []int64{1}}), "not in the workload"},
		{"pipeline stage", []Request{okReq}, []Batch{{ID: 0, Stage: 1, RequestIDs: []int64{0}, NumTokens: []int64{2}}}, "pipeline"},
		{"batches out of order", []Request{okReq}, []Batch{okBatches[1], okBatches[0]}, "one after another"},
		{"extra token", []Request{okReq}, append(okBatches[:2:2], Batch{ID: 2, StartUs: 3, DurUs: 1, RequestIDs: []int64{0}, NumTokens: []int64{1}}), "after all its"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Convert(work, &Output{Requests: tc.reqs, Batches: tc.batches})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkConvertSample converts the 1000-request sample (15,935 batches,
// 220k tokens) from Vidur's files to canonical rows.
func BenchmarkConvertSample(b *testing.B) {
	w, err := schema.ReadWorkload(filepath.Join(sampleDir, "workload"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ConvertOutput(sampleDir, w.Requests); err != nil {
			b.Fatal(err)
		}
	}
}
