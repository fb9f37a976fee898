package servebench

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// testWorkload writes a workload of n requests, gap apart, with prompt and
// output lengths cycling through small values.
func testWorkload(t testing.TB, n int, gap time.Duration) (string, *schema.Workload) {
	t.Helper()
	dir := t.TempDir()
	w := &schema.Workload{Meta: schema.WorkloadMeta{Model: "standin", Generator: "test"}}
	for i := 0; i < n; i++ {
		inter := int64(gap)
		if i == 0 {
			inter = 0
		}
		arr := int64(0)
		if i > 0 {
			arr = w.Requests[i-1].ArrivalTimeNs + inter
		}
		w.Requests = append(w.Requests, schema.Request{ID: int64(i), PromptID: int64(i), NumPrefillTokens: int64(8 + 5*(i%4)),
			NumDecodeTokens: int64(3 + i%5), InterArrivalNs: inter, ArrivalTimeNs: arr})
	}
	if err := schema.WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	return dir, w
}

// testWorkloadOf writes n requests of fixed lengths, gap apart, into dir.
func testWorkloadOf(t testing.TB, dir string, n int, prefill, decode int64, gap time.Duration) *schema.Workload {
	t.Helper()
	w := &schema.Workload{Meta: schema.WorkloadMeta{Model: "m", Generator: "test"}}
	for i := 0; i < n; i++ {
		inter := int64(gap)
		if i == 0 {
			inter = 0
		}
		w.Requests = append(w.Requests, schema.Request{ID: int64(i), PromptID: int64(i), NumPrefillTokens: prefill,
			NumDecodeTokens: decode, InterArrivalNs: inter, ArrivalTimeNs: int64(i) * int64(gap)})
	}
	if err := schema.WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	return w
}

// runKind runs serve-bench on a workload and returns the output folder and
// the run error.
func runKind(t *testing.T, wdir string, params map[string]any) (string, error) {
	t.Helper()
	out := t.TempDir()
	spec := &stage.Spec{Stage: "serve", Instance: "serve", Kind: "serve-bench", Key: "k", Params: params,
		Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: wdir}}}, OutDir: out, BaseDir: t.TempDir()}
	if err := (Kind{}).CheckParams(params); err != nil {
		t.Fatalf("CheckParams: %v", err)
	}
	var log bytes.Buffer
	err := Kind{}.Run(context.Background(), spec, stage.Env{Log: &log})
	t.Logf("log:\n%s", log.String())
	if err != nil {
		return out, err
	}
	if err := (Kind{}).Validate(spec); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return out, nil
}

func readMeta(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, schema.RunMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestServeBenchCompletionsExactLengths(t *testing.T) {
	st := &standin{ttft: 3 * time.Millisecond, itl: time.Millisecond, keepBodies: true}
	srv := st.start(t)
	t.Setenv("OPENAI_API_KEY", "sk-secret-never-written")
	wdir, w := testWorkload(t, 12, 4*time.Millisecond)
	out, err := runKind(t, wdir, map[string]any{"url": srv.URL + "/v1", "model": "standin"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := schema.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := schema.WorkloadDigest(wdir)
	if err := schema.MatchWorkload(out, run, w, digest); err != nil {
		t.Fatal(err)
	}
	for _, m := range run.Requests {
		if m.Status != schema.StatusOK || m.NumDecodeTokensActual != m.NumDecodeTokens {
			t.Errorf("request %d: %+v", m.RequestID, m)
		}
		if m.TTFTNs < int64(3*time.Millisecond) {
			t.Errorf("request %d: ttft %d below the server's 3 ms", m.RequestID, m.TTFTNs)
		}
	}
	// Every request's body: a token-id prompt of exactly the workload's
	// length, the output length forced, usage asked for. The warm-up is first.
	if len(st.bodies) != 13 {
		t.Fatalf("%d bodies, want 13 (1 warm-up + 12)", len(st.bodies))
	}
	byLen := map[int]int{}
	for _, b := range st.bodies[1:] {
		ids := b["prompt"].([]any)
		byLen[len(ids)]++
		mt := b["max_tokens"].(float64)
		if b["min_tokens"].(float64) != mt || b["ignore_eos"] != true || b["stream"] != true {
			t.Errorf("body does not force the length: %v", b)
		}
		if so := b["stream_options"].(map[string]any); so["include_usage"] != true {
			t.Errorf("usage not asked: %v", b)
		}
		for _, id := range ids {
			if v := id.(float64); v < 1000 || v >= 30000 {
				t.Errorf("token id %v outside the default range", v)
			}
		}
	}
	for _, r := range w.Requests {
		byLen[int(r.NumPrefillTokens)]--
	}
	for l, c := range byLen {
		if c != 0 {
			t.Errorf("prompt length %d: %+d bodies vs workload", l, c)
		}
	}
	meta := readMeta(t, out)
	extra := meta["extra"].(map[string]any)
	lc := extra["length_check"].(map[string]any)
	if lc["prompt_token_mismatches"].(float64) != 0 || lc["requests_with_usage"].(float64) != 12 {
		t.Errorf("length_check %v", lc)
	}
	eng := meta["engine"].(map[string]any)
	if eng["server_version"].(map[string]any)["version"] != "standin-1" || eng["token_times"] != "chunk" {
		t.Errorf("engine %v", eng)
	}
	if _, ok := extra["arrival_lateness"].(map[string]any)["p99_ns"]; !ok {
		t.Errorf("no lateness in %v", extra)
	}
	// The API key went to the server and nowhere else.
	for _, name := range []string{schema.RunMetaFile, schema.RequestMetricsFile, ClientMetricsFile} {
		b, _ := os.ReadFile(filepath.Join(out, name))
		if bytes.Contains(b, []byte("sk-secret")) {
			t.Errorf("%s holds the API key", name)
		}
	}
	if !schema.Exists(filepath.Join(out, ClientMetricsFile)) {
		t.Error("no client_metrics.csv")
	}
}

func TestServeBenchAPIKeySent(t *testing.T) {
	st := &standin{}
	srv := st.start(t)
	t.Setenv("MY_KEY", "sk-abc")
	wdir, _ := testWorkload(t, 1, 0)
	if _, err := runKind(t, wdir, map[string]any{"url": srv.URL, "model": "standin", "api_key_env": "MY_KEY", "warmup_requests": 0}); err != nil {
		t.Fatal(err)
	}
	if h, _ := st.auth.Load().(string); h != "Bearer sk-abc" {
		t.Errorf("Authorization %q", h)
	}
}

func TestServeBenchChatTextPrompts(t *testing.T) {
	// The stand-in adds 5 tokens around a chat message, as a chat template
	// does; the prompts must still total the workload's counts.
	st := &standin{extraPrompt: 5, keepBodies: true}
	srv := st.start(t)
	wdir, w := testWorkload(t, 6, time.Millisecond)
	out, err := runKind(t, wdir, map[string]any{"url": srv.URL, "model": "standin", "endpoint": "chat"})
	if err != nil {
		t.Fatal(err)
	}
	lc := readMeta(t, out)["extra"].(map[string]any)["length_check"].(map[string]any)
	if lc["prompt_token_mismatches"].(float64) != 0 {
		t.Errorf("length_check %v", lc)
	}
	if oh := readMeta(t, out)["extra"].(map[string]any)["prompt_overhead_tokens"].(float64); oh != 5 {
		t.Errorf("overhead %v, want 5", oh)
	}
	run, _ := schema.ReadRun(out)
	for i, m := range run.Requests {
		if m.Status != schema.StatusOK || m.NumDecodeTokensActual != w.Requests[i].NumDecodeTokens {
			t.Errorf("%+v", m)
		}
	}
}

func TestServeBenchChatWordsWithoutTokenizer(t *testing.T) {
	// No /tokenize (transformers serve has none): prompts are common words,
	// sized by two calibration requests' usage.
	st := &standin{extraPrompt: 5, noTokenize: true}
	srv := st.start(t)
	wdir, _ := testWorkload(t, 6, time.Millisecond)
	out, err := runKind(t, wdir, map[string]any{"url": srv.URL, "model": "standin", "endpoint": "chat"})
	if err != nil {
		t.Fatal(err)
	}
	extra := readMeta(t, out)["extra"].(map[string]any)
	if lc := extra["length_check"].(map[string]any); lc["prompt_token_mismatches"].(float64) != 0 {
		t.Errorf("length_check %v", lc)
	}
	if !strings.Contains(extra["prompt"].(string), "common English words") {
		t.Errorf("prompt note %q", extra["prompt"])
	}
}

func TestServeBenchFailuresRecorded(t *testing.T) {
	cases := []struct {
		name     string
		st       *standin
		params   map[string]any
		wantType string // error_type of request 2
		allFail  bool
	}{
		{"http 500", &standin{status: func(n int) int { return map[bool]int{true: 500}[n == 3] }}, nil, "http_500", false},
		{"http 429", &standin{status: func(n int) int { return map[bool]int{true: 429}[n == 3] }}, nil, "http_429", false},
		{"cut stream", &standin{cutAfter: 2}, nil, ErrStream, true},
		{"short output", &standin{shortBy: 1}, nil, ErrTokenCount, true},
		{"timeout", &standin{hang: true}, map[string]any{"timeout_s": 0.3, "warmup_requests": 0}, ErrTimeout, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := c.st.start(t)
			wdir, _ := testWorkload(t, 4, time.Millisecond)
			params := map[string]any{"url": srv.URL, "model": "standin"}
			for k, v := range c.params {
				params[k] = v
			}
			if c.name == "cut stream" || c.name == "short output" {
				params["warmup_requests"] = 0
			}
			out, err := runKind(t, wdir, params)
			if c.allFail {
				if err == nil || !strings.Contains(err.Error(), c.wantType) {
					t.Fatalf("want a no-request-succeeded error naming %s, got %v", c.wantType, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reqs, err := schema.ReadRequestMetrics(filepath.Join(out, schema.RequestMetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			if len(reqs) != 4 {
				t.Fatalf("%d rows, failed requests must not be dropped", len(reqs))
			}
			failed := 0
			for _, m := range reqs {
				if m.Status == schema.StatusFailed {
					failed++
					if m.ErrorType != c.wantType || m.ErrorMessage == "" {
						t.Errorf("failed row %+v, want error_type %s with a message", m, c.wantType)
					}
				}
			}
			if failed != 1 {
				t.Errorf("%d failed rows, want 1", failed)
			}
		})
	}
}

func TestServeBenchPartialStreamKeepsItsTokens(t *testing.T) {
	// A request whose stream breaks keeps the tokens it got, as a failed row.
	st := &standin{cutAfter: 2}
	srv := st.start(t)
	wdir, _ := testWorkload(t, 5, time.Millisecond)
	b, s := testBench(t, srv.URL, nil)
	w, _ := schema.ReadWorkload(wdir)
	o, err := b.run(context.Background(), w, t.Logf, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]schema.Request{}
	for _, r := range w.Requests {
		want[r.ID] = r
	}
	a := assemble(o.results, want, s.tokenTimes)
	for _, m := range a.reqs {
		if m.Status != schema.StatusFailed || m.ErrorType != ErrStream || m.NumDecodeTokensActual != 2 || m.FirstTokenTimeNs < 0 {
			t.Errorf("%+v", m)
		}
	}
}

func TestServeBenchRefusedIsClearError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	wdir, _ := testWorkload(t, 2, 0)
	_, err = runKind(t, wdir, map[string]any{"url": "http://" + addr, "model": "m"})
	if err == nil || !strings.Contains(err.Error(), "is it running") {
		t.Fatalf("got %v", err)
	}
}

func TestServeBenchMaxConcurrency(t *testing.T) {
	st := &standin{ttft: 20 * time.Millisecond, itl: time.Millisecond}
	srv := st.start(t)
	wdir, _ := testWorkload(t, 8, 0)
	out, err := runKind(t, wdir, map[string]any{"url": srv.URL, "model": "standin", "max_concurrency": 2, "warmup_requests": 0})
	if err != nil {
		t.Fatal(err)
	}
	if p := st.peak.Load(); p > 2 {
		t.Errorf("%d requests in flight at the server, cap 2", p)
	}
	// Without the cap all 8 arrive at once.
	st2 := &standin{ttft: 20 * time.Millisecond, itl: time.Millisecond}
	srv2 := st2.start(t)
	if _, err := runKind(t, wdir, map[string]any{"url": srv2.URL, "model": "standin", "warmup_requests": 0}); err != nil {
		t.Fatal(err)
	}
	if p := st2.peak.Load(); p != 8 {
		t.Errorf("open loop: %d in flight at most, want all 8", p)
	}
	_ = out
}

func TestServeBenchMultiTokenChunks(t *testing.T) {
	cases := []struct {
		name       string
		logprobs   bool
		wantPlaced float64 // tokens the client had to put on the last chunk
	}{
		{"logprobs tell the count", true, 0},
		{"usage fills the rest", false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &standin{perChunk: 3, logprobs: true, itl: time.Millisecond}
			srv := st.start(t)
			wdir, _ := testWorkload(t, 5, time.Millisecond)
			out, err := runKind(t, wdir, map[string]any{"url": srv.URL, "model": "standin", "logprobs": c.logprobs, "warmup_requests": 0})
			if err != nil {
				t.Fatal(err)
			}
			run, _ := schema.ReadRun(out)
			for _, m := range run.Requests {
				if m.Status != schema.StatusOK {
					t.Errorf("%+v", m)
				}
			}
			tt := readMeta(t, out)["extra"].(map[string]any)["token_timing"].(map[string]any)
			if tt["multi_token_chunks"].(float64) == 0 {
				t.Errorf("multi-token chunks not counted: %v", tt)
			}
			if c.logprobs && tt["tokens_placed_on_last_chunk"].(float64) != 0 {
				t.Errorf("with logprobs no token is guessed: %v", tt)
			}
			if !c.logprobs && tt["tokens_placed_on_last_chunk"].(float64) == 0 {
				t.Errorf("without logprobs the usage's extra tokens are placed and counted: %v", tt)
			}
		})
	}
}

func testBench(t *testing.T, url string, params map[string]any) (*bench, *settings) {
	t.Helper()
	p := Params{URL: url, Model: "standin"}
	zero := 0
	p.WarmupRequests = &zero
	if params != nil {
		b, _ := json.Marshal(params)
		_ = json.Unmarshal(b, &p)
	}
	s, err := resolve(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBench(s)
	if err != nil {
		t.Fatal(err)
	}
	return b, s
}
