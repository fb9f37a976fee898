package servebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/schema"
)

// Recorded streams (testdata/servebench/streams/*.sse) are the exact bytes a
// real server sent for one streamed request, with an SSE comment line
// ": +<ns>" before each line giving when it arrived after the request was
// sent. Comments are part of the SSE format and ignored by clients, so the
// file is itself a valid stream. The sidecar <name>.json holds the request
// that was sent and what the server is and did.
const streamsDir = "../../testdata/servebench/streams"

type recordedMeta struct {
	Server   string         `json:"server"`
	Endpoint string         `json:"endpoint"`
	Request  map[string]any `json:"request"`
	Note     string         `json:"note"`
}

type recordedLine struct {
	at   time.Duration
	line []byte
}

func readRecorded(t testing.TB, path string) ([]recordedLine, recordedMeta) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []recordedLine
	at := time.Duration(0)
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if v, ok := bytes.CutPrefix(bytes.TrimRight(l, "\n"), []byte(": +")); ok {
			ns, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				t.Fatalf("%s: bad time comment %q", path, l)
			}
			at = time.Duration(ns)
			continue
		}
		out = append(out, recordedLine{at: at, line: l})
	}
	var meta recordedMeta
	mb, err := os.ReadFile(strings.TrimSuffix(path, ".sse") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mb, &meta); err != nil {
		t.Fatal(err)
	}
	return out, meta
}

// replayServer answers every generation request with one recorded stream,
// at its recorded pace divided by speedup.
func replayServer(t testing.TB, lines []recordedLine, speedup float64) *httptest.Server {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		start := time.Now()
		for _, l := range lines {
			if d := time.Duration(float64(l.at)/speedup) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
			_, _ = w.Write(l.line)
			fl.Flush()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/completions", h)
	mux.HandleFunc("/v1/chat/completions", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func recordedFiles(t *testing.T) []string {
	files, _ := filepath.Glob(filepath.Join(streamsDir, "*.sse"))
	if len(files) == 0 {
		t.Fatalf("no recorded streams in %s", streamsDir)
	}
	return files
}

// TestRecordedStreams replays each recorded stream to the client and checks
// what it makes of it against what the stream itself says: as many tokens
// as the server's usage reports (or, without usage, as content events),
// times in arrival order, the first token no earlier than the first event
// that carried text.
func TestRecordedStreams(t *testing.T) {
	for _, f := range recordedFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			lines, meta := readRecorded(t, f)
			srv := replayServer(t, lines, 4)
			var wantComp, textEvents int64 = -1, 0
			var firstText time.Duration = -1
			for _, l := range lines {
				data, ok := bytes.CutPrefix(bytes.TrimSpace(l.line), []byte("data: "))
				if !ok || string(data) == "[DONE]" {
					continue
				}
				p, err := parseChunk(data)
				if err != nil {
					t.Fatalf("recorded event does not parse: %v: %s", err, data)
				}
				if p.usage {
					wantComp = p.comp
				}
				if p.text {
					textEvents++
					if firstText < 0 {
						firstText = l.at
					}
				}
			}
			ep := EndpointCompletions
			if meta.Endpoint == "/v1/chat/completions" {
				ep = EndpointChat
			}
			s, err := resolve(Params{URL: srv.URL, Model: "m", Endpoint: ep}, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			client, _ := newHTTPClient(s)
			body, _ := json.Marshal(meta.Request)
			r := newResult(0, 0)
			t0 := time.Now()
			do(context.Background(), s, client, s.join(s.endpointPath()), body, 30*time.Second,
				func() int64 { return int64(time.Since(t0)) }, &r)
			if r.errType != "" {
				t.Fatalf("%s: %s", r.errType, r.errMsg)
			}
			usage := int64(-1)
			if r.usage {
				usage = r.usageComp
			}
			tt := tokenTimes(r.chunks, usage, TokenTimesChunk)
			want := wantComp
			if want < 0 {
				want = textEvents
			}
			if int64(len(tt.times)) != want {
				t.Errorf("%d tokens, the stream says %d (usage %d, %d text events)", len(tt.times), want, wantComp, textEvents)
			}
			for i := 1; i < len(tt.times); i++ {
				if tt.times[i] < tt.times[i-1] {
					t.Fatalf("token %d before token %d", i, i-1)
				}
			}
			if len(tt.times) > 0 && time.Duration(tt.times[0]) < time.Duration(float64(firstText)/4) {
				t.Errorf("first token at %v, before the recorded first text event (%v at 4x)", time.Duration(tt.times[0]), firstText/4)
			}
			t.Logf("%s: %d events, %d text chunks, %d tokens (usage %d), %d placed on the last chunk",
				meta.Server, r.events, len(r.chunks), len(tt.times), wantComp, tt.unplaced)
		})
	}
}

// TestRecordStream is not a test: with GSIM_SERVEBENCH_RECORD=URL it sends
// the request in $GSIM_SERVEBENCH_RECORD_BODY (JSON) to URL and writes the
// stream, with ": +ns" arrival comments, to $GSIM_SERVEBENCH_RECORD_OUT. It
// is how the files in testdata/servebench/streams were made.
func TestRecordStream(t *testing.T) {
	url := os.Getenv("GSIM_SERVEBENCH_RECORD")
	if url == "" {
		t.Skip("set GSIM_SERVEBENCH_RECORD to record a stream (see testdata/servebench/README.md)")
	}
	body, err := os.ReadFile(os.Getenv("GSIM_SERVEBENCH_RECORD_BODY"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(os.Getenv("GSIM_SERVEBENCH_RECORD_OUT"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	t0 := time.Now()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			fmt.Fprintf(out, ": +%d\n", time.Since(t0).Nanoseconds())
			_, _ = out.Write(line)
		}
		if err != nil {
			break
		}
	}
}

// TestServeBenchOnRecordedServer runs the whole kind against a server that
// answers every request with llama-server's recorded completions stream (8
// tokens for a 40-token prompt), on a workload of those lengths: a run
// folder that validates, every request ok, lengths confirmed by the
// server's own usage.
func TestServeBenchOnRecordedServer(t *testing.T) {
	lines, _ := readRecorded(t, filepath.Join(streamsDir, "llama-server-completions.sse"))
	srv := replayServer(t, lines, 10)
	dir := t.TempDir()
	w := testWorkloadOf(t, dir, 6, 40, 8, 20*time.Millisecond)
	out, err := runKind(t, dir, map[string]any{"url": srv.URL, "model": "m", "warmup_requests": 0})
	if err != nil {
		t.Fatal(err)
	}
	run, err := schema.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Requests) != len(w.Requests) {
		t.Fatalf("%d rows", len(run.Requests))
	}
	for _, m := range run.Requests {
		if m.Status != schema.StatusOK || m.NumDecodeTokensActual != 8 {
			t.Errorf("%+v", m)
		}
	}
	lc := readMeta(t, out)["extra"].(map[string]any)["length_check"].(map[string]any)
	if lc["prompt_token_mismatches"].(float64) != 0 || lc["completion_token_mismatches"].(float64) != 0 || lc["requests_with_usage"].(float64) != 6 {
		t.Errorf("length_check %v", lc)
	}
}

// TestRecordedLlamaServerSweep checks the sweep recorded against
// llama-server: each run folder is canonical, was made on its workload
// (digest, one row per request, the workload's lengths), every request
// streamed exactly its tokens, and the server's usage agreed with the
// workload on every prompt and output.
func TestRecordedLlamaServerSweep(t *testing.T) {
	dirs, _ := filepath.Glob("../../testdata/servebench/llama-server/rate-*")
	if len(dirs) == 0 {
		t.Fatal("no recorded llama-server sweep")
	}
	for _, d := range dirs {
		t.Run(filepath.Base(d), func(t *testing.T) {
			run, err := schema.ReadRun(filepath.Join(d, "run"))
			if err != nil {
				t.Fatal(err)
			}
			wdir := filepath.Join(d, "workload")
			w, err := schema.ReadWorkload(wdir)
			if err != nil {
				t.Fatal(err)
			}
			digest, err := schema.WorkloadDigest(wdir)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.MatchWorkload(filepath.Join(d, "run"), run, w, digest); err != nil {
				t.Fatal(err)
			}
			for _, m := range run.Requests {
				if m.Status != schema.StatusOK || m.NumDecodeTokensActual != m.NumDecodeTokens {
					t.Errorf("%+v", m)
				}
			}
			lc := run.Meta.Extra["length_check"].(map[string]any)
			if lc["prompt_token_mismatches"].(float64) != 0 || lc["completion_token_mismatches"].(float64) != 0 ||
				int(lc["requests_with_usage"].(float64)) != len(w.Requests) {
				t.Errorf("length_check %v", lc)
			}
			if !strings.Contains(run.Meta.Engine["server_props"].(map[string]any)["build_info"].(string), "Debian") {
				t.Errorf("server props %v", run.Meta.Engine["server_props"])
			}
		})
	}
}

// TestRecordedTransformersServeSweep checks the recorded H200 sweep
// (testdata/servebench/transformers-serve/rate-*): for each rate, the run
// over HTTP (serve-bench against transformers serve) and the in-process run
// (real-bench) were made from exactly that workload, every request
// succeeded with the workload's token counts (the server's own usage
// confirms them), both engines were configured alike, and the medians that
// docs/serve-bench.md reports are what the files hold.
func TestRecordedTransformersServeSweep(t *testing.T) {
	// Medians in ms as docs/serve-bench.md states them (one decimal).
	documented := map[string]struct{ serveTTFT, realTTFT, serveITL, realITL float64 }{
		"rate-4":  {46.7, 38.8, 25.6, 23.8},
		"rate-8":  {46.8, 41.3, 27.8, 24.5},
		"rate-16": {55.2, 173.7, 32.0, 27.1},
	}
	dirs, _ := filepath.Glob("../../testdata/servebench/transformers-serve/rate-*")
	if len(dirs) != len(documented) {
		t.Fatalf("found %d recorded rates, want %d", len(dirs), len(documented))
	}
	for _, d := range dirs {
		t.Run(filepath.Base(d), func(t *testing.T) {
			want, ok := documented[filepath.Base(d)]
			if !ok {
				t.Fatalf("%s is not documented", d)
			}
			wdir := filepath.Join(d, "workload")
			w, err := schema.ReadWorkload(wdir)
			if err != nil {
				t.Fatal(err)
			}
			digest, err := schema.WorkloadDigest(wdir)
			if err != nil {
				t.Fatal(err)
			}
			runs := map[string]*schema.Run{}
			for _, name := range []string{"serve", "real"} {
				run, err := schema.ReadRun(filepath.Join(d, name))
				if err != nil {
					t.Fatal(err)
				}
				if err := schema.MatchWorkload(filepath.Join(d, name), run, w, digest); err != nil {
					t.Fatal(err)
				}
				if len(run.Requests) != len(w.Requests) {
					t.Fatalf("%s: %d requests, workload %d", name, len(run.Requests), len(w.Requests))
				}
				for _, m := range run.Requests {
					if m.Status != schema.StatusOK || m.NumDecodeTokensActual != m.NumDecodeTokens {
						t.Errorf("%s: %+v", name, m)
					}
				}
				runs[name] = run
			}

			serve := runs["serve"].Meta
			lc := serve.Extra["length_check"].(map[string]any)
			for _, k := range []string{"prompt_token_mismatches", "completion_token_mismatches", "chunk_count_vs_usage_mismatches", "requests_without_usage", "multi_token_chunks"} {
				if lc[k].(float64) != 0 {
					t.Errorf("length_check %s = %v", k, lc[k])
				}
			}
			if int(lc["requests_with_usage"].(float64)) != len(w.Requests) {
				t.Errorf("length_check %v", lc)
			}
			if serve.Engine["endpoint"] != "/v1/completions" || serve.Engine["prompt"] != "text" || serve.Engine["server_header"] != "uvicorn" {
				t.Errorf("serve engine %v", serve.Engine)
			}
			if serve.Extra["prompt_overhead_tokens"].(float64) != 0 {
				t.Errorf("the completions endpoint added %v tokens around a prompt", serve.Extra["prompt_overhead_tokens"])
			}

			// The in-process engine has the settings the server was started
			// with (--cb-block-size 256 --cb-num-blocks 1024
			// --cb-max-batch-tokens 8192 --cb-use-cuda-graph, block sharing
			// on as the server cannot turn it off).
			real := runs["real"].Meta
			if !strings.Contains(fmt.Sprint(real.Hardware["gpu_name"]), "H200") {
				t.Errorf("real-bench hardware %v", real.Hardware)
			}
			for k, v := range map[string]any{"block_size": 256.0, "num_blocks": 1024.0, "max_batch_tokens": 8192.0,
				"allow_block_sharing": true, "attn_implementation": "paged|sdpa", "cuda_graphs": []any{true, true}} {
				if fmt.Sprint(real.Engine[k]) != fmt.Sprint(v) {
					t.Errorf("real-bench engine %s = %v, want %v", k, real.Engine[k], v)
				}
			}

			got := []float64{medianTTFTms(runs["serve"]), medianTTFTms(runs["real"]), medianITLms(runs["serve"]), medianITLms(runs["real"])}
			exp := []float64{want.serveTTFT, want.realTTFT, want.serveITL, want.realITL}
			for i, label := range []string{"serve TTFT", "real TTFT", "serve ITL", "real ITL"} {
				if math.Abs(got[i]-exp[i]) > 0.051 {
					t.Errorf("%s p50 %.3f ms, docs say %.1f", label, got[i], exp[i])
				}
			}
		})
	}
}

func medianTTFTms(run *schema.Run) float64 {
	v := make([]float64, 0, len(run.Requests))
	for _, m := range run.Requests {
		v = append(v, float64(m.TTFTNs)/1e6)
	}
	sort.Float64s(v)
	return analysis.Quantile(v, 0.5)
}

// medianITLms is the median gap between consecutive tokens of a request.
func medianITLms(run *schema.Run) float64 {
	byReq := map[int64][]int64{}
	for _, tk := range run.Tokens {
		byReq[tk.RequestID] = append(byReq[tk.RequestID], tk.TokenTimeNs)
	}
	var gaps []float64
	for _, ts := range byReq {
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		for i := 1; i < len(ts); i++ {
			gaps = append(gaps, float64(ts[i]-ts[i-1])/1e6)
		}
	}
	sort.Float64s(gaps)
	return analysis.Quantile(gaps, 0.5)
}
