package servebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// splitmix64 is a tiny seeded generator: the prompt of request i is the same
// on every run and machine (the tokens' values do not matter for timing, but
// a rerun must send the same bytes, and requests must not share prefixes a
// server's prefix cache would reuse).
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// tokenIDs returns n ids in [lo, hi) for request id under seed.
func tokenIDs(seed, id int64, n int, lo, hi int64) []int64 {
	g := splitmix64(uint64(seed)*0x100000001b3 ^ uint64(id+1)*0xc2b2ae3d27d4eb4f)
	out := make([]int64, n)
	span := uint64(hi - lo)
	for i := range out {
		out[i] = lo + int64(g.next()%span)
	}
	return out
}

// requestBody is the JSON body of one streamed generation request. prompt is
// a []int64 (token ids) or a string.
func (s *settings) requestBody(prompt any, maxTokens int64) ([]byte, error) {
	b := map[string]any{}
	for k, v := range s.ExtraBody {
		b[k] = v
	}
	b["model"] = s.Model
	b["stream"] = true
	b["max_tokens"] = maxTokens
	if _, ok := b["temperature"]; !ok {
		b["temperature"] = 0
	}
	if s.usage {
		b["stream_options"] = map[string]any{"include_usage": true}
	}
	if s.ignoreEOS {
		b["ignore_eos"] = true
	}
	if s.minTokens {
		b["min_tokens"] = maxTokens
	}
	if s.endpoint == EndpointChat {
		text, ok := prompt.(string)
		if !ok {
			return nil, errors.New("chat requests need a text prompt")
		}
		b["messages"] = []map[string]string{{"role": "user", "content": text}}
		if s.Logprobs {
			b["logprobs"], b["top_logprobs"] = true, 0
		}
	} else {
		b["prompt"] = prompt
		if s.Logprobs {
			b["logprobs"] = 1
		}
	}
	return json.Marshal(b)
}

// tokenizer talks to the server's /tokenize and /detokenize, whose bodies
// differ between engines: vLLM reads model+prompt and answers tokens (and
// count) or prompt, llama.cpp reads content and answers tokens or content.
// One body carries both spellings; each engine ignores the other's.
type tokenizer struct {
	s      *settings
	client *http.Client
}

func (t *tokenizer) post(ctx context.Context, path string, body map[string]any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.s.join(path), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	t.s.authorize(req)
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &httpError{Path: path, Status: resp.StatusCode, Body: excerpt(raw)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("POST %s: the answer is not the expected JSON: %v (%s)", path, err, excerpt(raw))
	}
	return nil
}

func (t *tokenizer) tokenize(ctx context.Context, text string) ([]int64, error) {
	var out struct {
		Tokens []json.RawMessage `json:"tokens"`
	}
	body := map[string]any{"model": t.s.Model, "prompt": text, "content": text,
		"add_special_tokens": false, "add_special": false}
	if err := t.post(ctx, "/tokenize", body, &out); err != nil {
		return nil, err
	}
	// llama.cpp answers [id, ...] or, with with_pieces, [{"id":...}, ...].
	ids := make([]int64, 0, len(out.Tokens))
	for _, raw := range out.Tokens {
		var id int64
		if err := json.Unmarshal(raw, &id); err != nil {
			var obj struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(raw, &obj); err != nil {
				return nil, fmt.Errorf("POST /tokenize: token %s is neither an id nor {\"id\": ...}", raw)
			}
			id = obj.ID
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (t *tokenizer) detokenize(ctx context.Context, ids []int64) (string, error) {
	var out struct {
		Prompt  *string `json:"prompt"`
		Content *string `json:"content"`
	}
	if err := t.post(ctx, "/detokenize", map[string]any{"model": t.s.Model, "tokens": ids}, &out); err != nil {
		return "", err
	}
	switch {
	case out.Prompt != nil:
		return *out.Prompt, nil
	case out.Content != nil:
		return *out.Content, nil
	}
	return "", errors.New("POST /detokenize: the answer has neither prompt nor content")
}

// textOf builds a text of exactly n tokens (as the server's tokenizer counts
// them without special tokens) from seeded random token ids: detokenize,
// count, then drop or add ids until the count is n. Text of random ids does
// not always re-tokenize to as many tokens, hence the loop. It returns the
// text and its token count, which differs from n only if the loop did not
// converge.
func (t *tokenizer) textOf(ctx context.Context, seed, id int64, n int) (string, int, error) {
	ids := tokenIDs(seed, id, n, t.s.idLo, t.s.idHi)
	extra := int64(0)
	best, bestN := "", -1
	for round := 0; round < 12; round++ {
		text, err := t.detokenize(ctx, ids)
		if err != nil {
			return "", 0, err
		}
		got, err := t.tokenize(ctx, text)
		if err != nil {
			return "", 0, err
		}
		c := len(got)
		if bestN < 0 || abs(c-n) < abs(bestN-n) {
			best, bestN = text, c
		}
		switch {
		case c == n:
			return text, c, nil
		case c > n:
			cut := c - n
			if cut >= len(ids) {
				cut = len(ids) - 1
			}
			ids = ids[:len(ids)-cut]
		default:
			extra++
			ids = append(ids, tokenIDs(seed+extra*7919, id, n-c, t.s.idLo, t.s.idHi)...)
		}
		if len(ids) == 0 {
			break
		}
	}
	return best, bestN, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// httpError is a non-200 answer.
type httpError struct {
	Path   string
	Status int
	Body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Path, e.Status, e.Body)
}

// excerpt is the first line-ish of a response body, for error messages.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
