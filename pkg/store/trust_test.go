package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenExisting(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "none")
	if _, err := OpenExisting(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing folder: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("OpenExisting made the folder")
	}
	foreign := filepath.Join(root, "foreign")
	os.MkdirAll(filepath.Join(foreign, "objects"), 0o755)
	os.MkdirAll(filepath.Join(foreign, "failed"), 0o755)
	var ns *NotStoreError
	if _, err := OpenExisting(foreign); !errors.As(err, &ns) || ns.Missing || !strings.Contains(err.Error(), "not a gsim store") {
		t.Errorf("folder that is no store: %v", err)
	}
	made, err := Open(filepath.Join(root, "made"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(made.Root, MarkerFile)); err != nil {
		t.Errorf("Open wrote no marker: %v", err)
	}
	if _, err := OpenExisting(made.Root); err != nil {
		t.Errorf("a store Open made: %v", err)
	}
	// A store of a gsim older than the marker: its full layout.
	os.Remove(filepath.Join(made.Root, MarkerFile))
	if _, err := OpenExisting(made.Root); err != nil {
		t.Errorf("a store with gsim's layout and no marker: %v", err)
	}
	// ... but not if one of its folders is a link.
	os.Remove(filepath.Join(made.Root, "staging"))
	os.Symlink(foreign, filepath.Join(made.Root, "staging"))
	if _, err := OpenExisting(made.Root); err == nil {
		t.Error("a layout with a linked folder taken for a store")
	}
}

func TestKeyShapes(t *testing.T) {
	k := strings.Repeat("ab", 32)
	for name, want := range map[string]bool{k: true, strings.ToUpper(k): false, k[:63]: false, k + "0": false, "notes": false} {
		if IsKey(name) != want {
			t.Errorf("IsKey(%q) = %v", name, !want)
		}
	}
	for name, want := range map[string]bool{k + "-12-3": true, k + "-12": false, k + "-x-3": false, "a-1-2": false, k: false} {
		if _, ok := StagingKey(name); ok != want {
			t.Errorf("StagingKey(%q) ok = %v", name, ok)
		}
	}
}

func TestCommittedFilesReadOnly(t *testing.T) {
	s, _ := Open(t.TempDir())
	commitOne(t, s, tk("k"), map[string]string{"a.txt": "1", "sub/b.txt": "2"})
	for _, f := range []string{"a.txt", "sub/b.txt", ManifestFile, LogFile} {
		st, err := os.Stat(filepath.Join(s.ObjectDir(tk("k")), f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != readOnly {
			t.Errorf("%s: mode %v, want read-only", f, st.Mode())
		}
	}
	// Replacing the object and removing it work on read-only files.
	commitOne(t, s, tk("k"), map[string]string{"a.txt": "3"})
	if r := s.Check(tk("k")); !r.Complete || len(r.Manifest.Files) != 1 {
		t.Errorf("replaced read-only object: %+v", r)
	}
	if rep, err := s.Clean(false); err != nil || len(rep.Items) != 1 {
		t.Errorf("clean of a read-only object: %+v %v", rep, err)
	}
	if _, err := os.Stat(s.ObjectDir(tk("k"))); !os.IsNotExist(err) {
		t.Error("read-only object survived clean")
	}
}

func TestCommitRefusesLinksOutOfTheOutput(t *testing.T) {
	for _, tc := range []struct {
		path, target string
		ok           bool
	}{
		{"latest.csv", "data.csv", true},
		{"sub/latest.csv", "../data.csv", true},
		{"sub/x", "./../sub/../data.csv", true},
		{"latest.csv", "/etc/hostname", false},
		{"latest.csv", "../data.csv", false},
		{"sub/latest.csv", "../../data.csv", false},
		// Out and back in under the attempt's name dangles once it moves.
		{"latest.csv", "../STAGING/data.csv", false},
	} {
		s, _ := Open(t.TempDir())
		dir, _ := s.NewStaging(tk("k"))
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		os.WriteFile(filepath.Join(dir, "data.csv"), []byte("x\n"), 0o644)
		target := strings.Replace(tc.target, "STAGING", filepath.Base(dir), 1)
		if err := os.Symlink(target, filepath.Join(dir, tc.path)); err != nil {
			t.Fatal(err)
		}
		err := s.Commit(dir, &Manifest{Key: tk("k")})
		if tc.ok != (err == nil) {
			t.Errorf("%s -> %s: %v", tc.path, tc.target, err)
		}
		if err != nil && (!strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), "cp -L")) {
			t.Errorf("%s -> %s: message does not name the link and how to copy: %v", tc.path, tc.target, err)
		}
	}
}

func TestCheckCallsDamageCorruption(t *testing.T) {
	s, _ := Open(t.TempDir())
	key := tk("k")
	commitOne(t, s, key, map[string]string{"a.txt": "hello"})
	p := filepath.Join(s.ObjectDir(key), "a.txt")
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("hello!"), 0o644)
	if r := s.Check(key); r.Complete || !r.Damaged || r.Problem != "a.txt: size changed" {
		t.Errorf("appended bytes: %+v", r)
	}
	os.Remove(filepath.Join(s.ObjectDir(key), ManifestFile))
	if r := s.Check(key); r.Complete || !r.Damaged {
		t.Errorf("removed manifest: %+v", r)
	}
	// A manifest of another gsim version is not damage.
	os.Remove(filepath.Join(s.ObjectDir(key), ManifestFile))
	os.WriteFile(filepath.Join(s.ObjectDir(key), ManifestFile), []byte(`{"schema_version": 99, "key": "`+key+`"}`), 0o644)
	if r := s.Check(key); r.Complete || r.Damaged || !r.Exists {
		t.Errorf("manifest of another version: %+v", r)
	}
}

func TestFailKeepsEarlierDiagnostic(t *testing.T) {
	s, _ := Open(t.TempDir())
	key := tk("k")
	first, _ := s.NewStaging(key)
	os.WriteFile(filepath.Join(first, LogFile), []byte("the first diagnostic\n"), 0o644)
	if _, err := s.Fail(first, key); err != nil {
		t.Fatal(err)
	}
	// A later attempt that could write nothing (a full disk).
	second, _ := s.NewStaging(key)
	os.WriteFile(filepath.Join(second, LogFile), nil, 0o644)
	dir, err := s.Fail(second, key)
	if err != nil || dir != s.FailedDir(key) {
		t.Fatal(dir, err)
	}
	b, _ := os.ReadFile(s.FailedLog(key))
	if !strings.HasPrefix(string(b), "the first diagnostic\n") || !strings.Contains(string(b), "could write no log") {
		t.Errorf("failed log after an attempt without a log:\n%s", b)
	}
	if _, err := os.Stat(second); !os.IsNotExist(err) {
		t.Error("the empty attempt's folder is left in staging")
	}
	// A later attempt with something to say replaces it.
	third, _ := s.NewStaging(key)
	os.WriteFile(filepath.Join(third, LogFile), []byte("the third diagnostic\n"), 0o644)
	s.Fail(third, key)
	if b, _ := os.ReadFile(s.FailedLog(key)); string(b) != "the third diagnostic\n" {
		t.Errorf("failed log after a later diagnostic:\n%s", b)
	}
}
