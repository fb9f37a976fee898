package servebench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// standin is a fast OpenAI-compatible server for unit tests and the client
// benchmark: it streams max_tokens tokens per request with a fixed delay
// before the first and between the others, in the shape vLLM uses
// (completions: choices[0].text; chat: a role chunk, then delta.content;
// usage in a last chunk when asked; [DONE]). Knobs inject the failures the
// client must record.
type standin struct {
	ttft, itl      time.Duration
	perChunk       int              // tokens per chunk (default 1)
	logprobs       bool             // answer logprobs when asked
	noUsage        bool             // never send usage
	noDone         bool             // close without [DONE]
	extraPrompt    int64            // added to the reported prompt tokens (a BOS token, a template)
	shortBy        int64            // stream this many tokens fewer than max_tokens
	status         func(id int) int // HTTP status for the n-th request (0: 200)
	cutAfter       int              // close the stream after this many tokens (0: never)
	hang           bool             // never finish the stream
	requests       atomic.Int64
	inFlight, peak atomic.Int64
	mu             sync.Mutex
	bodies         []map[string]any
	keepBodies     bool
	noTokenize     bool         // answer 404 at /tokenize and /detokenize, as transformers serve does
	auth           atomic.Value // the last Authorization header
}

func (st *standin) start(t testing.TB) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/completions", func(w http.ResponseWriter, r *http.Request) { st.generate(w, r, false) })
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { st.generate(w, r, true) })
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"standin","object":"model","max_model_len":4096}]}`)
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"version":"standin-1"}`) })
	// A word tokenizer: token id i is the word "w<i>", text splits on spaces.
	mux.HandleFunc("/tokenize", func(w http.ResponseWriter, r *http.Request) {
		if st.noTokenize {
			http.NotFound(w, r)
			return
		}
		var b struct {
			Prompt string `json:"prompt"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		ids := []int{}
		for _, f := range strings.Fields(b.Prompt) {
			n, _ := strconv.Atoi(strings.TrimPrefix(f, "w"))
			ids = append(ids, n)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"tokens": ids, "count": len(ids)})
	})
	mux.HandleFunc("/detokenize", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Tokens []int `json:"tokens"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		words := make([]string, len(b.Tokens))
		for i, id := range b.Tokens {
			words[i] = "w" + strconv.Itoa(id)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"prompt": strings.Join(words, " ")})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func (st *standin) generate(w http.ResponseWriter, r *http.Request, chat bool) {
	n := int(st.requests.Add(1)) - 1
	st.auth.Store(r.Header.Get("Authorization"))
	cur := st.inFlight.Add(1)
	// Counted out before the last event is written, so a client that starts
	// its next request on [DONE] never sees both counted.
	var left atomic.Bool
	leave := func() {
		if left.CompareAndSwap(false, true) {
			st.inFlight.Add(-1)
		}
	}
	defer leave()
	for {
		p := st.peak.Load()
		if cur <= p || st.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	if st.keepBodies {
		st.mu.Lock()
		st.bodies = append(st.bodies, body)
		st.mu.Unlock()
	}
	if st.status != nil {
		if code := st.status(n); code != 0 && code != http.StatusOK {
			http.Error(w, `{"error":{"message":"injected failure","type":"test"}}`, code)
			return
		}
	}
	var promptToks int64
	switch p := body["prompt"].(type) {
	case []any:
		promptToks = int64(len(p))
	case string:
		promptToks = int64(len(strings.Fields(p)))
	}
	if msgs, ok := body["messages"].([]any); ok && len(msgs) > 0 {
		c, _ := msgs[0].(map[string]any)["content"].(string)
		promptToks = int64(len(strings.Fields(c)))
	}
	promptToks += st.extraPrompt
	maxTok := int64(body["max_tokens"].(float64)) - st.shortBy
	stream, _ := body["stream"].(bool)
	if !stream {
		_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"text": "w1", "finish_reason": "length"}},
			"usage": map[string]any{"prompt_tokens": promptToks, "completion_tokens": 1}})
		return
	}
	_, wantLP := body["logprobs"]
	so, _ := body["stream_options"].(map[string]any)
	wantUsage := so != nil && so["include_usage"] == true && !st.noUsage
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	if chat {
		send(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": ""}}}})
	}
	per := st.perChunk
	if per < 1 {
		per = 1
	}
	time.Sleep(st.ttft)
	sent := int64(0)
	for sent < maxTok {
		if st.hang {
			<-r.Context().Done()
			return
		}
		k := min(int64(per), maxTok-sent)
		if st.cutAfter > 0 && sent >= int64(st.cutAfter) {
			return // the handler returns: the server ends the body without [DONE]
		}
		text := strings.Repeat("x", int(k))
		ch := map[string]any{"index": 0}
		if chat {
			ch["delta"] = map[string]any{"content": text}
		} else {
			ch["text"] = text
		}
		if wantLP && st.logprobs {
			toks := make([]string, k)
			for i := range toks {
				toks[i] = "x"
			}
			if chat {
				content := make([]map[string]any, k)
				for i := range content {
					content[i] = map[string]any{"token": "x", "logprob": -1.0}
				}
				ch["logprobs"] = map[string]any{"content": content}
			} else {
				ch["logprobs"] = map[string]any{"tokens": toks}
			}
		}
		sent += k
		if sent == maxTok {
			ch["finish_reason"] = "length"
		}
		send(map[string]any{"choices": []any{ch}})
		if sent < maxTok {
			time.Sleep(st.itl)
		}
	}
	if wantUsage {
		send(map[string]any{"choices": []any{}, "usage": map[string]any{"prompt_tokens": promptToks, "completion_tokens": sent}})
	}
	leave()
	if !st.noDone {
		fmt.Fprint(w, "data: [DONE]\n\n")
		fl.Flush()
	}
}
