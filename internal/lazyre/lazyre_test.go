package lazyre

import "testing"

func TestLazy(t *testing.T) {
	re := New(`^a(\d+)$`)
	if !re.MatchString("a12") || re.MatchString("b") {
		t.Error("MatchString")
	}
	if m := re.FindStringSubmatch("a7"); len(m) != 2 || m[1] != "7" {
		t.Errorf("FindStringSubmatch: %q", m)
	}
	if got := New(`b+`).ReplaceAllString("abba", "-"); got != "a-a" {
		t.Errorf("ReplaceAllString: %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a bad pattern must panic at first use")
		}
	}()
	New(`(`).MatchString("x")
}
