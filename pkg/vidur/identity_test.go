package vidur

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A Vidur tree is identified by its source, so an edit reruns its stages
// whether the tree is a git checkout or not, committed or not. Before, the
// key held the git HEAD ("unknown" outside git), and edits were not seen.
func TestFingerprintFollowsVidurSource(t *testing.T) {
	base, _ := filepath.Abs("../..")
	tree := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(tree, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("vidur/main.py", "print('vidur')\n")
	write("vidur/scheduler/sarathi.py", "CHUNK = 512\n")
	params := map[string]any{"vidur_path": tree}
	source := func() string {
		t.Helper()
		fp, err := Kind{}.Fingerprint(params, base)
		if err != nil {
			t.Fatal(err)
		}
		return fp["vidur:source"]
	}
	first := source()
	if first == "" || first == "unknown" {
		t.Fatalf("no source digest: %q", first)
	}
	write("vidur/__pycache__/main.cpython-311.pyc", "bytecode")
	if source() != first {
		t.Error("byte code changed the source digest")
	}
	write("vidur/scheduler/sarathi.py", "CHUNK = 256\n")
	edited := source()
	if edited == first {
		t.Error("an edit of a tree that is no git checkout left the key as it was")
	}
	id, err := TreeIdentity(tree)
	if err != nil || id.Commit != "" || id.Source != edited {
		t.Fatalf("identity of a plain tree: %+v, %v", id, err)
	}

	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed: the checkout half of the test needs it")
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", tree, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write(".gitignore", "__pycache__/\n")
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "v")
	id, err = TreeIdentity(tree)
	if err != nil || id.Commit == "" || id.Dirty || id.Source != edited {
		t.Fatalf("clean checkout: %+v, %v", id, err)
	}
	write("vidur/scheduler/sarathi.py", "CHUNK = 128\n")
	id, err = TreeIdentity(tree)
	if err != nil || !id.Dirty || id.Source == edited {
		t.Fatalf("checkout with a local edit: %+v, %v", id, err)
	}
	if source() != id.Source {
		t.Error("the key does not follow the uncommitted edit")
	}
	// Without Vidur located the source is unknown (validate and dag work).
	t.Setenv("GSIM_VIDUR", "")
	fp, err := Kind{}.Fingerprint(map[string]any{}, base)
	if err != nil || fp["vidur:source"] != "unknown" {
		t.Fatalf("unlocated: %v %v", fp, err)
	}
}
