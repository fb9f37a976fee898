package servebench

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/stage"
)

func TestTokenTimes(t *testing.T) {
	cases := []struct {
		name         string
		chunks       []tokChunk
		usage        int64
		mode         string
		want         []int64
		wantUnplaced int64
	}{
		{"one token a chunk", []tokChunk{{t: 10}, {t: 20}, {t: 35}}, 3, TokenTimesChunk, []int64{10, 20, 35}, 0},
		{"no usage", []tokChunk{{t: 10}, {t: 20}}, -1, TokenTimesChunk, []int64{10, 20}, 0},
		{"logprobs counts, chunk mode", []tokChunk{{t: 10, n: 1}, {t: 40, n: 3}}, 4, TokenTimesChunk, []int64{10, 40, 40, 40}, 0},
		{"logprobs counts, spread", []tokChunk{{t: 10, n: 1}, {t: 40, n: 3}}, 4, TokenTimesSpread, []int64{10, 20, 30, 40}, 0},
		{"usage beyond chunks goes to the last", []tokChunk{{t: 10}, {t: 20}}, 4, TokenTimesChunk, []int64{10, 20, 20, 20}, 2},
		{"first chunk of several tokens is not spread", []tokChunk{{t: 10, n: 2}, {t: 30}}, 3, TokenTimesSpread, []int64{10, 10, 30}, 0},
		{"usage below chunks keeps the stream's view", []tokChunk{{t: 10}, {t: 20}, {t: 30}}, 2, TokenTimesChunk, []int64{10, 20, 30}, 0},
		{"nothing streamed", nil, 5, TokenTimesChunk, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := tokenTimes(c.chunks, c.usage, c.mode)
			if !reflect.DeepEqual(got.times, c.want) || got.unplaced != c.wantUnplaced {
				t.Errorf("times %v unplaced %d, want %v and %d", got.times, got.unplaced, c.want, c.wantUnplaced)
			}
		})
	}
}

func TestSSEReader(t *testing.T) {
	long := strings.Repeat("x", 10000)
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"plain", "data: a\n\ndata: b\n\n", []string{"a", "b"}},
		{"crlf and no space", "data:a\r\n\r\ndata: b\r\n\r\n", []string{"a", "b"}},
		{"comments and other fields skipped", ": keep-alive\nevent: x\nid: 3\ndata: a\n\n: +123\n\n", []string{"a"}},
		{"multi-line data joined", "data: a\ndata: b\n\n", []string{"a\nb"}},
		{"last event without blank line", "data: a\n\ndata: b", []string{"a", "b"}},
		{"line longer than the buffer", "data: " + long + "\n\n", []string{long}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newSSEReader(strings.NewReader(c.in))
			var got []string
			for {
				d, err := r.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(d))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParamErrors(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name string
		p    Params
		env  map[string]string
		want string // "" = valid
	}{
		{"url and model from env", Params{}, map[string]string{EnvURL: "http://h:1", EnvModel: "m"}, ""},
		{"no url", Params{Model: "m"}, nil, "with.url: required"},
		{"no model", Params{URL: "http://h:1"}, nil, "with.model: required"},
		{"bad scheme", Params{URL: "ftp://h", Model: "m"}, nil, "http:// or https://"},
		{"query in url", Params{URL: "http://h:1/?x=1", Model: "m"}, nil, "no query"},
		{"bad endpoint", Params{URL: "http://h", Model: "m", Endpoint: "embeddings"}, nil, "with.endpoint"},
		{"token ids on chat", Params{URL: "http://h", Model: "m", Endpoint: EndpointChat, Prompt: PromptTokenIDs}, nil, "with.prompt"},
		{"bad range", Params{URL: "http://h", Model: "m", TokenIDRange: []int64{5, 5}}, nil, "with.token_id_range"},
		{"bad token times", Params{URL: "http://h", Model: "m", TokenTimes: "even"}, nil, "with.token_times"},
		{"reserved extra body", Params{URL: "http://h", Model: "m", ExtraBody: map[string]any{"max_tokens": 3}}, nil, "with.extra_body.max_tokens"},
		{"negative concurrency", Params{URL: "http://h", Model: "m", MaxConcurrency: -1}, nil, "with.max_concurrency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := resolve(c.p, env(c.env))
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseBaseStripsV1(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:8000":         "http://h:8000",
		"http://h:8000/v1":      "http://h:8000",
		"http://h:8000/v1/":     "http://h:8000",
		"https://u:p@h/api/v1":  "https://h/api",
		"http://h:8000/prefix/": "http://h:8000/prefix",
	} {
		u, err := parseBase(in)
		if err != nil || redact(u) != want {
			t.Errorf("%s: %v %v, want %s", in, u, err, want)
		}
	}
}

func TestServeBenchTLS(t *testing.T) {
	st := &standin{}
	srv := httptest.NewTLSServer(st.start(t).Config.Handler)
	defer srv.Close()
	wdir, _ := testWorkload(t, 2, 0)
	// An unknown certificate is refused, with the reason.
	if _, err := runKind(t, wdir, map[string]any{"url": srv.URL, "model": "standin"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate error, got %v", err)
	}
	// Trusting the server's CA works, as does skipping verification.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, extra := range []map[string]any{{"ca_file": ca}, {"insecure_skip_verify": true}} {
		params := map[string]any{"url": srv.URL, "model": "standin", "warmup_requests": 0}
		for k, v := range extra {
			params[k] = v
		}
		if _, err := runKind(t, wdir, params); err != nil {
			t.Errorf("%v: %v", extra, err)
		}
	}
}

func TestFingerprintAndSlot(t *testing.T) {
	t.Setenv(EnvURL, "http://user:pw@gpu-box:8000/v1")
	t.Setenv(EnvModel, "Qwen/Qwen3-0.6B")
	t.Setenv("OPENAI_API_KEY", "sk-not-in-the-key")
	fp, err := Kind{}.Fingerprint(map[string]any{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fp["env:"+EnvURL] != "http://gpu-box:8000" || fp["env:"+EnvModel] != "Qwen/Qwen3-0.6B" {
		t.Errorf("fingerprint %v: the environment's server must be part of the key, without credentials", fp)
	}
	for k, v := range fp {
		if strings.Contains(k+v, "sk-not") || strings.Contains(k+v, "pw") {
			t.Errorf("fingerprint holds a secret: %s=%s", k, v)
		}
	}
	// Params win and are in the key already: nothing from the environment.
	fp, _ = Kind{}.Fingerprint(map[string]any{"url": "http://other:1", "model": "m"}, t.TempDir())
	if len(fp) != 0 {
		t.Errorf("fingerprint %v, want empty", fp)
	}
	if got := (Kind{}).Resources(map[string]any{}); got["server-gpu-box_8000"] != 1 || len(got) != 1 {
		t.Errorf("resources %v: one slot per server", got)
	}
}

func TestServeBenchStoppedWritesNothing(t *testing.T) {
	st := &standin{hang: true}
	srv := st.start(t)
	wdir, _ := testWorkload(t, 3, 10*time.Millisecond)
	out := t.TempDir()
	spec := &stage.Spec{Stage: "serve", Kind: "serve-bench", Key: "k", OutDir: out, BaseDir: t.TempDir(),
		Params: map[string]any{"url": srv.URL, "model": "standin", "warmup_requests": 0},
		Inputs: map[string][]stage.Input{"workload": {{Kind: "workload", Dir: wdir}}}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := (Kind{}).Run(ctx, spec, stage.Env{}); err == nil {
		t.Fatal("a stopped bench must fail")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a stopped bench left %d files", len(entries))
	}
}
