package workload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/schema"
)

const traces = "../../testdata/traces"

func f64(v float64) *float64 { return &v }

func sourceParams(src Source) Params {
	return Params{Model: "Qwen/Qwen3-0.6B", Seed: 7, Source: &src}
}

func mustSource(t *testing.T, p Params) (*schema.Workload, TraceStats) {
	t.Helper()
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	w, st, err := fromSource(p, ".")
	if err != nil {
		t.Fatal(err)
	}
	checkWorkload(t, w)
	return w, st
}

// checkWorkload asserts the canonical invariants: ids 0..n-1, arrivals
// from 0, non-decreasing, inter-arrivals summing to them, lengths >= 1.
func checkWorkload(t *testing.T, w *schema.Workload) {
	t.Helper()
	var prev int64
	for i, r := range w.Requests {
		if r.ID != int64(i) || r.PromptID != r.ID {
			t.Fatalf("request %d has id %d prompt %d", i, r.ID, r.PromptID)
		}
		if r.NumPrefillTokens < 1 || r.NumDecodeTokens < 1 {
			t.Fatalf("request %d: %d/%d tokens", i, r.NumPrefillTokens, r.NumDecodeTokens)
		}
		if r.ArrivalTimeNs < prev || r.ArrivalTimeNs-prev != r.InterArrivalNs && i > 0 {
			t.Fatalf("request %d: arrival %d after %d, gap %d", i, r.ArrivalTimeNs, prev, r.InterArrivalNs)
		}
		prev = r.ArrivalTimeNs
	}
	if len(w.Requests) > 0 && w.Requests[0].ArrivalTimeNs != 0 {
		t.Fatalf("first arrival %d, want 0", w.Requests[0].ArrivalTimeNs)
	}
}

// The whole real 2023 code trace: every row is read, arrivals are the
// timestamps' offsets, and token counts are the file's.
func TestAzure2023WholeTrace(t *testing.T) {
	w, st := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: filepath.Join(traces, "azure-2023-code.csv.gz")}))
	if st.Rows != 8819 || len(w.Requests) != 8819 || st.ZeroTokens != 0 {
		t.Fatalf("read %d rows, kept %d (%s); the file has 8,819 requests", st.Rows, len(w.Requests), st)
	}
	// First rows of the file: 18:17:03.9799600,4808,10 then 18:17:04.0319600,3180,8.
	r0, r1 := w.Requests[0], w.Requests[1]
	if r0.NumPrefillTokens != 4808 || r0.NumDecodeTokens != 10 || r1.NumPrefillTokens != 3180 || r1.ArrivalTimeNs != 52_000_000 {
		t.Fatalf("first requests %+v %+v", r0, r1)
	}
	// Last row: 2023-11-16 19:14:19.9280160,549,173.
	last := w.Requests[len(w.Requests)-1]
	want := (time.Duration(57)*time.Minute + 15*time.Second + 948_056*time.Microsecond).Nanoseconds()
	if last.NumPrefillTokens != 549 || last.NumDecodeTokens != 173 || last.ArrivalTimeNs != want {
		t.Fatalf("last request %+v, want arrival %d", last, want)
	}
}

func TestAzureWindowRateAndSample(t *testing.T) {
	path := filepath.Join(traces, "azure-2023-code.csv.gz")
	whole, _ := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: path}))
	win, st := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: path, Start: "10m", Duration: "20m"}))
	if st.InWindow != len(win.Requests) || len(win.Requests) == 0 || len(win.Requests) >= len(whole.Requests) {
		t.Fatalf("window kept %d of %d (%s)", len(win.Requests), len(whole.Requests), st)
	}
	if span := time.Duration(win.Requests[len(win.Requests)-1].ArrivalTimeNs); span > 20*time.Minute {
		t.Fatalf("window of 20m spans %s", span)
	}
	fast, _ := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: path, Start: "10m", Duration: "20m", RateScale: f64(4)}))
	if len(fast.Requests) != len(win.Requests) {
		t.Fatal("rate_scale changed the request count")
	}
	for i := range fast.Requests {
		a, b := fast.Requests[i].ArrivalTimeNs, win.Requests[i].ArrivalTimeNs
		if d := a*4 - b; d < -4 || d > 4 || fast.Requests[i].NumPrefillTokens != win.Requests[i].NumPrefillTokens {
			t.Fatalf("request %d: arrival %d at 4x, %d at 1x", i, a, b)
		}
	}
	half, st := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: path, Sample: f64(0.5)}))
	if n := len(half.Requests); n < 4000 || n > 4800 {
		t.Fatalf("sample 0.5 kept %d of 8819 (%s)", n, st)
	}
	again, _ := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: path, Sample: f64(0.5)}))
	if len(again.Requests) != len(half.Requests) || again.Requests[100] != half.Requests[100] {
		t.Fatal("sampling is not deterministic for one seed")
	}
	p := sourceParams(Source{Format: FormatAzure, Path: path})
	p.NumRequests, p.MaxTotalTokens = 100, 2048
	capped, _ := mustSource(t, p)
	if len(capped.Requests) != 100 {
		t.Fatalf("num_requests 100 kept %d", len(capped.Requests))
	}
	for _, r := range capped.Requests {
		if r.NumPrefillTokens+r.NumDecodeTokens > 2048 {
			t.Fatalf("max_total_tokens not applied: %+v", r)
		}
	}
}

// The 2024 traces carry a UTC offset and 6 fractional digits; the excerpt
// holds the first and last five rows of each week-long file.
func TestAzure2024Ends(t *testing.T) {
	for _, c := range []struct {
		file string
		span time.Duration
	}{
		{"azure-2024-code-ends.csv", 7*24*time.Hour - 9930*time.Microsecond - 70*time.Millisecond - 499*time.Microsecond},
		{"azure-2024-conv-ends.csv", 7*24*time.Hour - 1163*time.Microsecond - 4540*time.Microsecond},
	} {
		w, _ := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: filepath.Join(traces, c.file)}))
		if len(w.Requests) != 10 {
			t.Fatalf("%s: %d requests", c.file, len(w.Requests))
		}
		if got := time.Duration(w.Requests[9].ArrivalTimeNs); got != c.span {
			t.Fatalf("%s: last arrival %s, want %s", c.file, got, c.span)
		}
	}
	// A day-long window keeps only the first day's rows.
	w, _ := mustSource(t, sourceParams(Source{Format: FormatAzure, Path: filepath.Join(traces, "azure-2024-conv-ends.csv"), Duration: "24h"}))
	if len(w.Requests) != 5 {
		t.Fatalf("24h window kept %d rows", len(w.Requests))
	}
}

func TestParseTimestamp(t *testing.T) {
	base := time.Date(2024, 5, 12, 0, 0, 0, 0, time.UTC).UnixNano()
	for in, want := range map[string]int64{
		"2024-05-12 00:00:00.001163+00:00": base + 1_163_000,
		"2024-05-12 00:00:01+00:00":        base + 1e9, // pandas drops a zero fraction
		"2024-05-12T00:00:00Z":             base,
		"2024-05-12 02:00:00+02:00":        base,
		"2024-05-11 22:00:00.5-02:00":      base + 5e8,
		"2024-05-12 00:00:00.123456789":    base + 123_456_789,
		"2024-05-12 00:00:00.9799600":      base + 979_960_000,
	} {
		if got, ok := parseTimestamp([]byte(in)); !ok || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "2024-05-12", "2024-13-12 00:00:00", "2024-05-12 00:00:00.", "2024-05-12 00:00:00+0200", "12/05/2024 00:00:00"} {
		if _, ok := parseTimestamp([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestBurstGPT(t *testing.T) {
	w, _ := mustSource(t, sourceParams(Source{Format: FormatBurstGPT, Path: filepath.Join(traces, "burstgpt-1-head.csv")}))
	want := []schema.Request{
		{ID: 0, PromptID: 0, NumPrefillTokens: 472, NumDecodeTokens: 18},
		{ID: 1, PromptID: 1, NumPrefillTokens: 1087, NumDecodeTokens: 230, InterArrivalNs: 40e9, ArrivalTimeNs: 40e9},
		{ID: 2, PromptID: 2, NumPrefillTokens: 417, NumDecodeTokens: 276, InterArrivalNs: 73e9, ArrivalTimeNs: 113e9},
	}
	for i, r := range w.Requests {
		if r != want[i] {
			t.Fatalf("request %d = %+v, want %+v", i, r, want[i])
		}
	}
	// The newer layout with Session ID and Elapsed time, a failed request
	// (0 response tokens) and the model and log-type filters. Synthetic
	// rows: the columns are BurstGPT_3's.
	path := filepath.Join(t.TempDir(), "burst3.csv")
	os.WriteFile(path, []byte("Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"+
		"0.5,a,1.2,ChatGPT,100,20,120,Conversation log\n"+
		"1.5,,0.9,GPT-4,50,0,50,API log\n"+
		"2.0,b,3.1,GPT-4,80,40,120,Conversation log\n"+
		"3.5,,2.0,ChatGPT,60,9,69,API log\n"), 0o644)
	all, st := mustSource(t, sourceParams(Source{Format: FormatBurstGPT, Path: path}))
	if len(all.Requests) != 3 || st.ZeroTokens != 1 {
		t.Fatalf("kept %d (%s), want 3 with the failed one dropped", len(all.Requests), st)
	}
	gpt4, st := mustSource(t, sourceParams(Source{Format: FormatBurstGPT, Path: path, Models: []string{"GPT-4"}, LogType: "conversation"}))
	if len(gpt4.Requests) != 1 || gpt4.Requests[0].NumPrefillTokens != 80 || st.Filtered != 3 {
		t.Fatalf("filters kept %+v (%s)", gpt4.Requests, st)
	}
}

func TestMooncake(t *testing.T) {
	w, st := mustSource(t, sourceParams(Source{Format: FormatMooncake, Path: filepath.Join(traces, "mooncake-conversation-head.jsonl")}))
	if len(w.Requests) != 100 || st.Rows != 100 {
		t.Fatalf("%d requests from 100 lines (%s)", len(w.Requests), st)
	}
	// {"timestamp": 0, "input_length": 6758, "output_length": 500, ...};
	// ten requests share timestamp 0, the 11th is at 3000 ms.
	if r := w.Requests[0]; r.NumPrefillTokens != 6758 || r.NumDecodeTokens != 500 {
		t.Fatalf("first request %+v", r)
	}
	if w.Requests[9].ArrivalTimeNs != 0 || w.Requests[10].ArrivalTimeNs != 3e9 {
		t.Fatalf("arrivals %d, %d", w.Requests[9].ArrivalTimeNs, w.Requests[10].ArrivalTimeNs)
	}
	// Every request's first block is block 0 (a shared system prompt): the
	// reuse the canonical workload drops is counted.
	if st.PrefixBlocks == 0 || st.RepeatedBlocks < 99 || !strings.Contains(st.String(), "hash_ids dropped") {
		t.Fatalf("prefix blocks not accounted: %s", st)
	}
}

func TestSourceErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	cases := []struct {
		name string
		src  Source
		want string
	}{
		{"wrong format", Source{Format: FormatAzure, Path: filepath.Join(traces, "burstgpt-1-head.csv")}, `no column "TIMESTAMP"`},
		{"bad time", Source{Format: FormatAzure, Path: write("t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.1,1,1\nyesterday,1,1\n")}, "t.csv: line 3, column TIMESTAMP"},
		{"bad count", Source{Format: FormatAzure, Path: write("c.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.1,x,1\n")}, "line 2, column ContextTokens: \"x\" is not a token count"},
		{"short row", Source{Format: FormatBurstGPT, Path: write("b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,1\n")}, "line 2: 3 fields, the header has 6"},
		{"bad json", Source{Format: FormatMooncake, Path: write("m.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2}\n{oops\n")}, "m.jsonl: line 2: not a JSON object"},
		{"missing field", Source{Format: FormatMooncake, Path: write("n.jsonl", "{\"timestamp\": 0, \"input_length\": 5}\n")}, "column output_length: missing"},
		{"empty window", Source{Format: FormatAzure, Path: filepath.Join(traces, "azure-2024-code-ends.csv"), Start: "1h", Duration: "1h"}, "no request left"},
		{"empty file", Source{Format: FormatAzure, Path: write("e.csv", "")}, "empty file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := fromSource(sourceParams(c.src), ".")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestSourceParamChecks(t *testing.T) {
	rate := 4.0
	cases := []struct {
		p    Params
		want string
	}{
		{Params{Model: "m", Source: &Source{Format: "sharegpt", Path: "x"}}, "with.source.format"},
		{Params{Model: "m", Source: &Source{Format: FormatAzure}}, "source.path: required"},
		{Params{Model: "m", Source: &Source{Format: FormatAzure, Path: "x", Duration: "0s"}}, "source.duration: must be > 0"},
		{Params{Model: "m", Source: &Source{Format: FormatAzure, Path: "x", Sample: f64(1.5)}}, "source.sample"},
		{Params{Model: "m", Source: &Source{Format: FormatAzure, Path: "x", RateScale: f64(0)}}, "source.rate_scale"},
		{Params{Model: "m", Source: &Source{Format: FormatAzure, Path: "x", Models: []string{"GPT-4"}}}, "only BurstGPT"},
		{Params{Model: "m", Source: &Source{Format: FormatAzure, Path: "x"}, Arrival: Arrival{Process: Poisson, Rate: &rate}}, "arrival: not used with source"},
		{Params{Model: "m", Source: &Source{Format: FormatAzure, Path: "x"}, Duration: "1h"}, "set source.duration"},
	}
	for _, c := range cases {
		err := c.p.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.p.Source, err, c.want)
		}
	}
}
