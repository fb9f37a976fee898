package fuzzdir

import (
	"os"
	"testing"
)

func TestPathMadeOnceAndRemoved(t *testing.T) {
	d := New("gsim-fuzzdir-test-")
	p := d.Path(t)
	if q := d.Path(t); q != p {
		t.Fatalf("second Path %q, first %q", q, p)
	}
	if err := os.WriteFile(p+"/x", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.remove()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("folder %s still there after remove: %v", p, err)
	}
}

func TestUnusedDirNeverMade(t *testing.T) {
	d := New("gsim-fuzzdir-test-")
	d.remove()
	if d.path != "" {
		t.Fatalf("remove made a folder %s", d.path)
	}
}
