package report

import (
	"strings"
	"testing"
)

func TestTokenTimingNote(t *testing.T) {
	cases := []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"no token timing", map[string]any{}, ""},
		{"one token a chunk", map[string]any{"token_timing": map[string]any{"mode": "chunk", "multi_token_chunks": 0.0, "tokens_placed_on_last_chunk": 0.0}}, ""},
		{"chunked", map[string]any{"token_timing": map[string]any{"mode": "chunk", "multi_token_chunks": 3.0, "tokens_placed_on_last_chunk": 0.0}}, "k-1 zero gaps"},
		{"spread", map[string]any{"token_timing": map[string]any{"mode": "spread", "multi_token_chunks": 0.0, "tokens_placed_on_last_chunk": 2.0}}, "spread evenly"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := tokenTimingNote(RunResult{Label: "srv", Extra: c.extra})
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
