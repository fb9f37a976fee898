package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPathBufLstatIsJoin: pathBuf.lstat stats what unix.Lstat of
// filepath.Join stats, whatever a (possibly damaged) manifest names.
func TestPathBufLstatIsJoin(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "obj")
	long := strings.Repeat("d", 200)
	for _, d := range []string{"obj/sub", "other", "obj/" + long + "/" + long} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"obj/a.txt", "obj/sub/b.txt", "other/c.txt", "obj/" + long + "/" + long + "/x"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A link whose ".." the kernel resolves from its target, unlike Clean.
	if err := os.Symlink(filepath.Join(root, "other"), filepath.Join(dir, "lnk")); err != nil {
		t.Fatal(err)
	}
	var pb pathBuf
	for _, rel := range []string{"a.txt", "sub/b.txt", "missing", "lnk", "lnk/c.txt", "lnk/../a.txt", "sub/../a.txt",
		"../other/c.txt", "..", ".", "", "./a.txt", "sub//b.txt", "/a.txt", long + "/" + long + "/x",
		"a.txt\x00", "a.txt\x00junk", "sub/b.txt\x00/x"} {
		var got, want unix.Stat_t
		gerr := pb.lstat(dir, rel, &got)
		werr := unix.Lstat(filepath.Join(dir, filepath.FromSlash(rel)), &want)
		if (gerr == nil) != (werr == nil) || gerr == nil && (got.Ino != want.Ino || got.Size != want.Size) {
			t.Errorf("%q: got %v ino %d, Join gives %v ino %d", rel, gerr, got.Ino, werr, want.Ino)
		}
	}
}
