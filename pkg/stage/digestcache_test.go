package stage

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A digest is trusted only while the file's signature holds: an edit that
// keeps size and mtime (cp -p, touch -d) still changes the ctime.
func TestFileDigestTrustsOnlyAnUnchangedFile(t *testing.T) {
	dir := t.TempDir()
	UseDigestCache(filepath.Join(dir, "cache"), "")
	defer UseDigestCache("", "")
	p := filepath.Join(dir, "trace.csv")
	os.WriteFile(p, []byte("a,b\n1,2\n"), 0o644)
	fresh, err := FileDigest(p)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "cache")); len(ents) != 0 {
		t.Error("a file changed within the last second was remembered")
	}
	time.Sleep(racyWindow + 100*time.Millisecond)
	d1, _ := FileDigest(p)
	if d1 != fresh {
		t.Fatal("digest changed without an edit")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "cache")); len(ents) != 1 {
		t.Errorf("a settled file's digest was not remembered: %v", ents)
	}
	// Same size, same mtime, other bytes.
	st, _ := os.Stat(p)
	os.WriteFile(p, []byte("a,b\n3,4\n"), 0o644)
	os.Chtimes(p, st.ModTime(), st.ModTime())
	d2, _ := FileDigest(p)
	if d2 == d1 {
		t.Error("an edit that kept size and mtime was not seen")
	}
	// A later process: memory gone, the folder remembers.
	digests.mem.Clear()
	time.Sleep(racyWindow + 100*time.Millisecond)
	d3, _ := FileDigest(p)
	digests.mem.Clear()
	calls := 0
	got, _ := digests.get("file", p, mustSig(t, p), func() (string, error) { calls++; return "", nil })
	if got != d3 || calls != 0 {
		t.Errorf("a later process rehashed (%d) or got %s, want %s", calls, got, d3)
	}
}

func mustSig(t *testing.T, p string) fileSig {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return sigOf(fi)
}

func TestDirDigestSeesEveryChange(t *testing.T) {
	dir := t.TempDir()
	UseDigestCache(filepath.Join(dir, "cache"), "")
	defer UseDigestCache("", "")
	run := filepath.Join(dir, "runner")
	os.MkdirAll(filepath.Join(run, "sub"), 0o755)
	os.WriteFile(filepath.Join(run, "a.py"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(run, "sub", "b.py"), []byte("y"), 0o644)
	time.Sleep(racyWindow + 100*time.Millisecond)
	d1, _ := DirDigest(run)
	if d, _ := DirDigest(run); d != d1 {
		t.Fatal("unstable digest")
	}
	seen := map[string]bool{d1: true}
	for _, c := range []struct {
		name   string
		change func() error
	}{
		{"edit", func() error { return os.WriteFile(filepath.Join(run, "sub", "b.py"), []byte("z"), 0o644) }},
		{"add", func() error { return os.WriteFile(filepath.Join(run, "c.py"), []byte("c"), 0o644) }},
		{"rename", func() error { return os.Rename(filepath.Join(run, "c.py"), filepath.Join(run, "d.py")) }},
		{"remove", func() error { return os.Remove(filepath.Join(run, "a.py")) }},
	} {
		name := c.name
		if err := c.change(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		d, _ := DirDigest(run)
		if seen[d] {
			t.Errorf("%s: digest did not change", name)
		}
		seen[d] = true
	}
}
