package sim

import (
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// The bench's warm-up sends n requests shaped like the first arrivals
// (lengths of arrival i mod len, outputs capped at 64), all at once.
func TestWarmupRequests(t *testing.T) {
	reqs := []schema.Request{
		{ID: 0, NumPrefillTokens: 10, NumDecodeTokens: 100, ArrivalTimeNs: 50},
		{ID: 1, NumPrefillTokens: 20, NumDecodeTokens: 5, ArrivalTimeNs: 0},
		{ID: 2, NumPrefillTokens: 30, NumDecodeTokens: 70, ArrivalTimeNs: 50},
	}
	got := warmupRequests(reqs, 4)
	want := []schema.Request{
		{ID: 0, PromptID: 0, NumPrefillTokens: 20, NumDecodeTokens: 5},
		{ID: 1, PromptID: 1, NumPrefillTokens: 10, NumDecodeTokens: 64},
		{ID: 2, PromptID: 2, NumPrefillTokens: 30, NumDecodeTokens: 64},
		{ID: 3, PromptID: 3, NumPrefillTokens: 20, NumDecodeTokens: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("%d warm-up requests, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("warm-up request %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if warmupRequests(reqs, 0) != nil || warmupRequests(nil, 8) != nil {
		t.Error("no warm-up requests expected")
	}
}
