package servebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// serverInfo is what the server says about itself, from the endpoints the
// common engines have: /version (vLLM, SGLang), /v1/models (all; vLLM adds
// max_model_len), /props (llama.cpp: build, slots, context, defaults). Each
// is optional; what answers 200 with JSON is recorded.
type serverInfo struct {
	Header  string         `json:"server_header,omitempty"`
	Version any            `json:"version,omitempty"`
	Model   any            `json:"model_entry,omitempty"`
	Props   map[string]any `json:"props,omitempty"`
}

// probeServer also tells whether the server can be reached at all: a
// transport error on /v1/models (refused, unresolvable, TLS) is returned, so
// a wrong URL fails the stage at once with one clear message.
func probeServer(ctx context.Context, s *settings, client *http.Client) (serverInfo, error) {
	var info serverInfo
	var reachErr error
	get := func(path string) (any, string) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.join(path), nil)
		if err != nil {
			return nil, ""
		}
		s.authorize(req)
		resp, err := client.Do(req)
		if err != nil {
			if reachErr == nil {
				reachErr = err
			}
			return nil, ""
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, resp.Header.Get("Server")
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return nil, resp.Header.Get("Server")
		}
		return v, resp.Header.Get("Server")
	}
	v, h := get("/v1/models")
	if reachErr != nil {
		return info, fmt.Errorf("cannot reach the server at %s: %v; is it running at with.url (or $%s)?", redact(s.base), unwrapURL(reachErr), EnvURL)
	}
	if v != nil || h != "" {
		info.Header = h
		if m, ok := v.(map[string]any); ok {
			if data, ok := m["data"].([]any); ok {
				for _, e := range data {
					if em, ok := e.(map[string]any); ok && em["id"] == s.Model {
						info.Model = trimJSON(em, 0)
					}
				}
			}
		}
	}
	if v, _ := get("/version"); v != nil {
		info.Version = trimJSON(v, 0)
	}
	if v, _ := get("/props"); v != nil {
		if m, ok := trimJSON(v, 0).(map[string]any); ok {
			info.Props = m
		}
	}
	return info, nil
}

// trimJSON drops what does not describe the server's settings and would bloat
// run_meta.json: chat templates and other long strings, and deep nesting.
func trimJSON(v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if depth > 3 {
			return nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			if strings.Contains(k, "template") || strings.Contains(k, "api_key") {
				continue
			}
			if t := trimJSON(e, depth+1); t != nil {
				out[k] = t
			}
		}
		return out
	case []any:
		if len(x) > 16 || depth > 3 {
			return nil
		}
		out := make([]any, 0, len(x))
		for _, e := range x {
			out = append(out, trimJSON(e, depth+1))
		}
		return out
	case string:
		if len(x) > 256 {
			return nil
		}
	}
	return v
}
