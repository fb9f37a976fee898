package suggest

import "testing"

func TestClosest(t *testing.T) {
	cands := []string{"workload", "real", "sim", "sim-profile", "compare", "report"}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"simm", "sim", true},
		{"SIM", "sim", true},
		{"reprot", "report", true},
		{"sim-profil", "sim-profile", true},
		{"zzzzzzzz", "", false},
		{"x", "", false}, // 2 edits from "sim" is allowed, but nothing is that close
	} {
		got, ok := Closest(tc.in, cands)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("Closest(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := Closest("a", nil); ok {
		t.Error("no candidates: want no suggestion")
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"rate", "rat", 1}, {"ü", "u", 1}} {
		if got := Distance(tc.a, tc.b); got != tc.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	if got := DidYouMean("num_request", []string{"num_requests", "seed"}); got != ` (did you mean "num_requests"?)` {
		t.Errorf("got %q", got)
	}
	if got := DidYouMean("qqqqqqqq", []string{"num_requests"}); got != "" {
		t.Errorf("got %q", got)
	}
}
