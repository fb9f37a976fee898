package servebench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// importVLLM runs vllm-workload then vllm-result on a result file and returns
// the two output folders.
func importVLLM(t *testing.T, file string) (string, string, error) {
	t.Helper()
	base := filepath.Dir(file)
	params := map[string]any{"path": filepath.Base(file)}
	wdir := t.TempDir()
	ws := &stage.Spec{Stage: "workload", Kind: "vllm-workload", Params: params, OutDir: wdir, BaseDir: base}
	if err := (VLLMWorkloadKind{}).Run(context.Background(), ws, stage.Env{}); err != nil {
		return "", "", err
	}
	if err := (VLLMWorkloadKind{}).Validate(ws); err != nil {
		t.Fatalf("workload Validate: %v", err)
	}
	rdir := t.TempDir()
	rs := &stage.Spec{Stage: "real", Kind: "vllm-result", Key: "k", Params: params, OutDir: rdir, BaseDir: base,
		Inputs: map[string][]stage.Input{"workload": {{Kind: "vllm-workload", Holds: stage.HoldsWorkload, Dir: wdir}}}}
	if err := (VLLMResultKind{}).Run(context.Background(), rs, stage.Env{}); err != nil {
		return wdir, "", err
	}
	if err := (VLLMResultKind{}).Validate(rs); err != nil {
		t.Fatalf("run Validate: %v", err)
	}
	return wdir, rdir, nil
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "result.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVLLMImportStartTimes(t *testing.T) {
	// Two requests sent 0.5 s apart (start_times), the second fails, the third
	// streams 4 tokens in 3 chunks; output_lens counts 5 for the first (one
	// chunk carried two tokens).
	f := writeFile(t, `{"date": "20260101-000000", "backend": "vllm", "model_id": "Qwen/Qwen3-0.6B",
	 "request_rate": 2.0, "max_concurrency": null,
	 "input_lens": [100, 50, 30], "output_lens": [5, 0, 4],
	 "ttfts": [0.1, 0.0, 0.2], "itls": [[0.01, 0.02, 0.03], [], [0.01, 0.01, 0.01]],
	 "start_times": [1000.0, 1000.5, 1000.25],
	 "errors": ["", "Bad Request: too long", ""]}`)
	wdir, rdir, err := importVLLM(t, f)
	if err != nil {
		t.Fatal(err)
	}
	w, err := schema.ReadWorkload(wdir)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Requests) != 2 || w.Requests[1].ArrivalTimeNs != 250_000_000 || w.Requests[1].NumPrefillTokens != 30 {
		t.Fatalf("workload %+v (want the failed request left out, the others in arrival order)", w.Requests)
	}
	run, err := schema.ReadRun(rdir)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := schema.WorkloadDigest(wdir)
	if err := schema.MatchWorkload(rdir, run, w, digest); err != nil {
		t.Fatal(err)
	}
	r0 := run.Requests[0]
	if r0.TTFTNs != 100_000_000 || r0.NumDecodeTokensActual != 5 || r0.CompletionTimeNs != 160_000_000 {
		t.Errorf("request 0 %+v", r0)
	}
	if r1 := run.Requests[1]; r1.ArrivalTimeNs != 250_000_000 || r1.FirstTokenTimeNs != 450_000_000 {
		t.Errorf("request 1 %+v", r1)
	}
	meta := run.Meta.Extra
	if !strings.Contains(meta["arrival"].(string), "start_times") {
		t.Errorf("arrival note %v", meta["arrival"])
	}
	if d := meta["dropped_failed_requests"].([]any); len(d) != 1 || !strings.Contains(d[0].(string), "too long") {
		t.Errorf("dropped %v", d)
	}
}

func TestVLLMImportRefusesUnknownArrivals(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"poisson without start_times", `{"request_rate": 4.0, "input_lens": [1], "output_lens": [1], "ttfts": [0.1], "itls": [[]]}`, "cannot be reconstructed exactly"},
		{"inf with a concurrency cap", `{"request_rate": "inf", "max_concurrency": 8, "input_lens": [1], "output_lens": [1], "ttfts": [0.1], "itls": [[]]}`, "cannot be reconstructed exactly"},
		{"summary only", `{"request_rate": "inf", "mean_ttft_ms": 3}`, "--save-detailed"},
		{"ragged", `{"request_rate": "inf", "input_lens": [1, 2], "output_lens": [1], "ttfts": [0.1], "itls": [[]]}`, "input_lens has 2 entries"},
		{"not json", "{\n  \"ttfts\": [0.1,\n  oops]\n}", "result.json:3:3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := importVLLM(t, writeFile(t, c.body))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestVLLMImportInfRate(t *testing.T) {
	// rate inf, no cap: every arrival is 0; itl_token_lens give exact counts.
	f := writeFile(t, `{"request_rate": "inf", "max_concurrency": null, "model_id": "m",
	 "input_lens": [10, 20], "output_lens": [4, 2], "ttfts": [0.05, 0.06],
	 "itls": [[0.01, 0.01], [0.02]], "itl_token_lens": [[2, 1], [1]], "errors": ["", ""]}`)
	_, rdir, err := importVLLM(t, f)
	if err != nil {
		t.Fatal(err)
	}
	run, err := schema.ReadRun(rdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range run.Requests {
		if m.ArrivalTimeNs != 0 || m.Status != schema.StatusOK {
			t.Errorf("%+v", m)
		}
	}
	// Request 0: token 0 at 50 ms, tokens 1-2 at 60 ms (a 2-token chunk), 3 at 70 ms.
	want := []int64{50_000_000, 60_000_000, 60_000_000, 70_000_000}
	for i, tok := range run.Tokens[:4] {
		if tok.TokenTimeNs != want[i] {
			t.Errorf("token %d at %d, want %d", i, tok.TokenTimeNs, want[i])
		}
	}
	if tt := run.Meta.Extra["token_timing"].(map[string]any); tt["tokens_placed_on_last_chunk"].(float64) != 0 {
		t.Errorf("token timing %v", tt)
	}
}

// The transformers serve recipe builds a tokenizer in which each of the
// client's common words is one token; its word list must stay the client's.
func TestWordsFileMatchesClient(t *testing.T) {
	b, err := os.ReadFile("../../testdata/servebench/transformers-serve/recipe/words.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); strings.Join(got, " ") != strings.Join(commonWords, " ") {
		t.Errorf("words.txt (%d words) differs from commonWords (%d); regenerate it from words.go", len(got), len(commonWords))
	}
}
