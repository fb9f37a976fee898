package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocate(t *testing.T) {
	top := t.TempDir()
	repo := filepath.Join(top, "repo")
	deep := filepath.Join(repo, "experiments", "mine")
	os.MkdirAll(deep, 0o755)
	if _, err := Open(filepath.Join(repo, "tmp")); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(repo, "tmp", "runs")
	plainTmp := filepath.Join(top, "other")
	os.MkdirAll(filepath.Join(plainTmp, "tmp"), 0o755) // a tmp/ that is not a store
	for _, tc := range []struct {
		name, flag, env, cwd string
		root, source         string
		exists               bool
	}{
		{"flag wins", "x", "/env", deep, filepath.Join(deep, "x"), FromFlag, false},
		{"env next", "", "/env/st", deep, "/env/st", FromEnv, false},
		{"found above", "", "", deep, filepath.Join(repo, "tmp"), FromSearch, true},
		{"found here", "", "", repo, filepath.Join(repo, "tmp"), FromSearch, true},
		{"inside the store", "", "", inside, filepath.Join(repo, "tmp"), FromSearch, true},
		{"not a store: default", "", "", plainTmp, filepath.Join(plainTmp, "tmp"), FromDefault, false},
		{"nothing: default", "", "", top, filepath.Join(top, "tmp"), FromDefault, false},
		{"flag names an existing store", filepath.Join(repo, "tmp"), "", top, filepath.Join(repo, "tmp"), FromFlag, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc, err := Locate(tc.flag, tc.env, tc.cwd)
			if err != nil {
				t.Fatal(err)
			}
			if loc.Root != tc.root || loc.Source != tc.source || loc.Exists != tc.exists {
				t.Errorf("got %+v, want root %s source %s exists %v", loc, tc.root, tc.source, tc.exists)
			}
		})
	}
	ents, _ := os.ReadDir(top)
	if len(ents) != 2 {
		t.Errorf("Locate made something: %v", ents)
	}
}

func TestLocateRefusesAFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	if _, err := Locate(f, "", dir); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Fatalf("got %v", err)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		loc    Location
		cwd    string
		making bool
		want   string
	}{
		{Location{"/r/tmp", FromSearch, true}, "/r", false, "/r/tmp"},
		{Location{"/r/tmp", FromSearch, true}, "/r/a/b", false, "/r/tmp (found above the current folder)"},
		{Location{"/r/tmp", FromDefault, false}, "/r", false, "/r/tmp (no store there yet)"},
		{Location{"/r/tmp", FromDefault, false}, "/r", true, "/r/tmp (new)"},
		{Location{"/s", FromEnv, true}, "/r", false, "/s (from $GSIM_STORE)"},
		{Location{"/s", FromFlag, false}, "/r", false, "/s (from --store; no store there yet)"},
	} {
		if got := tc.loc.Describe(tc.cwd, tc.making); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestIsStore(t *testing.T) {
	dir := t.TempDir()
	if IsStore(dir) {
		t.Error("an empty folder is a store")
	}
	os.MkdirAll(filepath.Join(dir, "objects"), 0o755)
	os.MkdirAll(filepath.Join(dir, "locks"), 0o755)
	if IsStore(dir) {
		t.Error("a partial layout is a store")
	}
	os.WriteFile(filepath.Join(dir, storeMarker), []byte("{}"), 0o644)
	if !IsStore(dir) {
		t.Error("a folder with the marker is not a store")
	}
	old := t.TempDir()
	if _, err := Open(old); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(old, storeMarker))
	if !IsStore(old) {
		t.Error("a store made before the marker (full layout) is not a store")
	}
}
