package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{map[string]any{"b": 1, "a": 2.0}, `{"a":2,"b":1}`},
		{map[string]any{"rate": 4}, `{"rate":4}`},
		{map[string]any{"rate": 4.0}, `{"rate":4}`},
		{map[string]any{"rate": int64(4)}, `{"rate":4}`},
		{[]any{0.5, 1e21, "x<y"}, `[0.5,1e+21,"x\u003cy"]`},
		{map[string]any{"n": map[string]any{"z": nil, "a": []any{true}}}, `{"n":{"a":[true],"z":null}}`},
		{map[string]string{"k": "v"}, `{"k":"v"}`},
	}
	for _, tt := range tests {
		got, err := CanonicalJSON(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("CanonicalJSON(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestKeyStability(t *testing.T) {
	base := KeyInput{
		Kind: "shell", Version: "1",
		Fingerprint: map[string]string{"b": "2", "a": "1"},
		Params:      map[string]any{"run": "echo hi", "n": 4},
		Inputs:      []InputRef{{Need: "w", Instance: "w[rate=1]", Digest: "d1"}},
	}
	k1, err := Key(base)
	if err != nil {
		t.Fatal(err)
	}
	// A fixed key: if this changes, every user's store is invalidated, so it
	// must only change together with keyFormat.
	const want = "cf829dd4b9542869112ef089336e148de124529375ab11d9df6688c87a525e9d"
	if k1 != want {
		t.Errorf("key = %s, want %s (change want only together with keyFormat)", k1, want)
	}
	same := base
	same.Params = map[string]any{"n": 4.0, "run": "echo hi"}
	same.Fingerprint = map[string]string{"a": "1", "b": "2"}
	same.Inputs = []InputRef{{Need: "w", Instance: "w[rate=1]", Key: "other-upstream-key", Digest: "d1"}}
	if k, _ := Key(same); k != k1 {
		t.Errorf("equivalent input gave a different key")
	}
	changes := map[string]func(*KeyInput){
		"kind":        func(k *KeyInput) { k.Kind = "shell2" },
		"version":     func(k *KeyInput) { k.Version = "2" },
		"fingerprint": func(k *KeyInput) { k.Fingerprint = map[string]string{"a": "1", "b": "3"} },
		"param":       func(k *KeyInput) { k.Params = map[string]any{"run": "echo hi", "n": 5} },
		"digest":      func(k *KeyInput) { k.Inputs = []InputRef{{Need: "w", Instance: "w[rate=1]", Digest: "d2"}} },
		"need":        func(k *KeyInput) { k.Inputs = []InputRef{{Need: "v", Instance: "w[rate=1]", Digest: "d1"}} },
		"instance":    func(k *KeyInput) { k.Inputs = []InputRef{{Need: "w", Instance: "w[rate=2]", Digest: "d1"}} },
	}
	for name, f := range changes {
		in := base
		f(&in)
		if k, _ := Key(in); k == k1 {
			t.Errorf("changing %s kept the key", name)
		}
	}
}

func commitOne(t *testing.T, s *Store, key string, files map[string]string) *Manifest {
	t.Helper()
	dir, err := s.NewStaging(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, LogFile), []byte("log\n"), 0o644)
	m := &Manifest{Key: key, Kind: "shell", Version: "1", Instance: "a"}
	if err := s.Commit(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("staging %s still exists after commit", dir)
	}
	return m
}

func TestCommitCheckVerify(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Check("k1"); r.Exists || r.Complete {
		t.Fatalf("empty store: %+v", r)
	}
	m := commitOne(t, s, "k1", map[string]string{"a.txt": "hello", "sub/b.txt": "world"})
	if len(m.Files) != 2 || m.Files[0].Path != "a.txt" || m.Files[1].Path != "sub/b.txt" {
		t.Fatalf("files = %+v (log and manifest must not be listed)", m.Files)
	}
	m2 := commitOne(t, s, "k2", map[string]string{"sub/b.txt": "world", "a.txt": "hello"})
	if m.OutputDigest != m2.OutputDigest {
		t.Errorf("same outputs gave different digests")
	}
	if r := s.Check("k1"); !r.Complete {
		t.Fatalf("fresh object not complete: %s", r.Problem)
	}
	// A touch alone keeps the object complete (rehash, not rerun).
	p := filepath.Join(s.ObjectDir("k1"), "a.txt")
	later := time.Now().Add(time.Hour)
	os.Chtimes(p, later, later)
	if r := s.Check("k1"); !r.Complete {
		t.Errorf("touched object not complete: %s", r.Problem)
	}
	// Same size, different bytes, new mtime: incomplete; Verify names it.
	os.Chmod(p, 0o644) // committed files are read-only
	os.WriteFile(p, []byte("HELLO"), 0o644)
	if r := s.Check("k1"); r.Complete || !strings.Contains(r.Problem, "a.txt") {
		t.Errorf("modified object: %+v", r)
	}
	probs, err := s.Verify("k1")
	if err != nil || len(probs) != 1 || probs[0].What != "sha256 mismatch" {
		t.Errorf("verify = %v, %v", probs, err)
	}
	os.WriteFile(p, []byte("hi"), 0o644)
	if probs, _ := s.Verify("k1"); len(probs) != 1 || probs[0].What != "size changed" {
		t.Errorf("verify = %v", probs)
	}
	os.Remove(p)
	if probs, _ := s.Verify("k1"); len(probs) != 1 || probs[0].What != "missing" {
		t.Errorf("verify = %v", probs)
	}
	// Recommitting the same key replaces the object.
	commitOne(t, s, "k1", map[string]string{"a.txt": "again"})
	if r := s.Check("k1"); !r.Complete || len(r.Manifest.Files) != 1 {
		t.Errorf("replaced object: %+v", r)
	}
}

func TestFolderWithoutManifestIsNotTrusted(t *testing.T) {
	s, _ := Open(t.TempDir())
	dir := s.ObjectDir("k")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "out.txt"), []byte("partial"), 0o644)
	if r := s.Check("k"); r.Complete || !r.Exists {
		t.Errorf("folder without manifest: %+v", r)
	}
	os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"schema_version":1,"key":"k"`), 0o644)
	if r := s.Check("k"); r.Complete {
		t.Errorf("truncated manifest trusted")
	}
}

func TestManifestWrittenLast(t *testing.T) {
	s, _ := Open(t.TempDir())
	dir, _ := s.NewStaging("k")
	os.WriteFile(filepath.Join(dir, "out.txt"), []byte("x"), 0o644)
	m := &Manifest{Key: "k"}
	if err := s.Commit(dir, m); err != nil {
		t.Fatal(err)
	}
	obj := s.ObjectDir("k")
	mst, _ := os.Stat(filepath.Join(obj, ManifestFile))
	ost, _ := os.Stat(filepath.Join(obj, "out.txt"))
	if mst.ModTime().Before(ost.ModTime()) {
		t.Errorf("manifest older than an output")
	}
}

func TestLock(t *testing.T) {
	s, _ := Open(t.TempDir())
	l, waited, err := s.Lock(context.Background(), "k", nil)
	if err != nil || waited {
		t.Fatal(err, waited)
	}
	if _, ok, _ := s.TryLock("k"); ok {
		t.Fatal("second lock on a held key succeeded")
	}
	var saidWaiting bool
	got := make(chan bool)
	go func() {
		l2, waited, err := s.Lock(context.Background(), "k", func() { saidWaiting = true })
		if err == nil {
			l2.Unlock()
		}
		got <- waited
	}()
	time.Sleep(100 * time.Millisecond)
	l.Unlock()
	if w := <-got; !w || !saidWaiting {
		t.Errorf("second locker waited=%v said=%v", w, saidWaiting)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	l3, _, _ := s.Lock(context.Background(), "k", nil)
	if _, _, err := s.Lock(ctx, "k", nil); err == nil {
		t.Error("lock ignored its context")
	}
	l3.Unlock()
}

func TestLinksAndClean(t *testing.T) {
	s, _ := Open(t.TempDir())
	commitOne(t, s, tk("keep"), map[string]string{"a": "1"})
	commitOne(t, s, tk("orphan"), map[string]string{"a": "2"})
	if err := s.Link("exp", "m[model=Qwen/Qwen3]", tk("orphan")); err != nil {
		t.Fatal(err)
	}
	if err := s.Link("exp", "m[model=Qwen/Qwen3]", tk("keep")); err != nil {
		t.Fatal(err)
	}
	if k, ok := s.Linked("exp", "m[model=Qwen/Qwen3]"); !ok || k != tk("keep") {
		t.Fatalf("linked = %s %v", k, ok)
	}
	if _, err := os.Stat(filepath.Join(s.LinkDir("exp"), "m.model@Qwen+2FQwen3", "a")); err != nil {
		t.Errorf("link does not reach the object: %v", err)
	}
	st, _ := s.NewStaging(tk("dead"))
	os.WriteFile(filepath.Join(st, "x"), []byte("x"), 0o644)
	held, _, _ := s.Lock(context.Background(), tk("live"), nil)
	live, _ := s.NewStaging(tk("live"))
	f, _ := s.NewStaging(tk("bad"))
	s.Fail(f, tk("bad"))

	rep, err := s.Clean(true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range rep.Items {
		got = append(got, filepath.Base(it.Path))
	}
	want := []string{filepath.Base(st), tk("bad"), tk("orphan")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("clean would remove %v, want %v", got, want)
	}
	if _, err := os.Stat(s.ObjectDir(tk("orphan"))); err != nil {
		t.Error("dry run removed something")
	}
	if _, err := s.Clean(false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{st, s.FailedDir(tk("bad")), s.ObjectDir(tk("orphan"))} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived clean", p)
		}
	}
	for _, p := range []string{live, s.ObjectDir(tk("keep"))} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("clean removed %s", p)
		}
	}
	held.Unlock()
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, root, want string }{
		// It said "store X: mkdir X: not a directory".
		{"a file", file, "store " + file + " is a file; give --store (or $GSIM_STORE) a folder"},
		{"under a file", filepath.Join(file, "s"), "; give --store (or $GSIM_STORE) a folder gsim can write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.root); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := Open(filepath.Join(dir, "new")); err != nil {
		t.Fatalf("a new folder: %v", err)
	}
}

// A run holds the store in use: a clean meanwhile must not remove an object
// it just committed and has not linked yet (or any object it reads), nor its
// failed attempts; only staging folders of dead attempts may go.
func TestCleanKeepsWhatALiveRunUses(t *testing.T) {
	s, _ := Open(t.TempDir())
	use, err := s.Use(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	commitOne(t, s, tk("fresh"), map[string]string{"a": "1"}) // committed, not yet linked
	f, _ := s.NewStaging(tk("bad"))
	s.Fail(f, tk("bad"))
	dead, _ := s.NewStaging(tk("dead"))

	rep, err := s.Clean(false)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.InUse {
		t.Error("report does not say a run is using the store")
	}
	for _, p := range []string{s.ObjectDir(tk("fresh")), s.FailedDir(tk("bad"))} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("clean during a live run removed %s", p)
		}
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("clean during a live run kept the dead attempt %s", dead)
	}
	use.Unlock()

	rep, err = s.Clean(false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.InUse {
		t.Error("report says in use after the run ended")
	}
	if _, err := os.Stat(s.ObjectDir(tk("fresh"))); !os.IsNotExist(err) {
		t.Error("clean after the run kept an unlinked object")
	}
}

// A link whose absolute target lies inside the attempt's folder is valid
// while the stage runs and validates, then dangles once the folder moves
// into objects/; Commit must refuse it. Relative links move with the folder.
func TestCommitRefusesAbsoluteLinkIntoStaging(t *testing.T) {
	s, _ := Open(t.TempDir())
	dir, _ := s.NewStaging("k")
	os.WriteFile(filepath.Join(dir, "data.csv"), []byte("x\n"), 0o644)
	if err := os.Symlink(filepath.Join(dir, "data.csv"), filepath.Join(dir, "latest.csv")); err != nil {
		t.Fatal(err)
	}
	err := s.Commit(dir, &Manifest{Key: "k"})
	if err == nil || !strings.Contains(err.Error(), "latest.csv") || !strings.Contains(err.Error(), "relative") {
		t.Fatalf("commit of an absolute link into staging: %v", err)
	}
	if r := s.Check("k"); r.Exists {
		t.Fatalf("refused attempt was adopted: %+v", r)
	}

	dir, _ = s.NewStaging("k")
	os.WriteFile(filepath.Join(dir, "data.csv"), []byte("x\n"), 0o644)
	os.Symlink("data.csv", filepath.Join(dir, "latest.csv"))
	if err := s.Commit(dir, &Manifest{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.ObjectDir("k"), "latest.csv")); err != nil || string(b) != "x\n" {
		t.Errorf("relative link in an object: %q %v", b, err)
	}
	if r := s.Check("k"); !r.Complete {
		t.Errorf("object with a relative link: %+v", r)
	}
}

// After a touch (or a copy of the store that did not keep mtimes), the first
// Check rehashes the file and records its new mtime, so later no-op runs
// trust (size, mtime) again instead of rehashing it every time.
func TestCheckRecordsMtimeAfterRehash(t *testing.T) {
	s, _ := Open(t.TempDir())
	m := commitOne(t, s, "k", map[string]string{"a.txt": "hello", "b.txt": "world"})
	p := filepath.Join(s.ObjectDir("k"), "a.txt")
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	os.Chtimes(p, later, later)
	if r := s.Check("k"); !r.Complete {
		t.Fatalf("touched object: %+v", r)
	}
	got, err := ReadManifest(s.ObjectDir("k"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Files[0].MtimeNs != later.UnixNano() {
		t.Errorf("manifest still records mtime %d for a.txt, want %d: every run rehashes it", got.Files[0].MtimeNs, later.UnixNano())
	}
	if got.OutputDigest != m.OutputDigest || got.Files[0].SHA256 != m.Files[0].SHA256 || got.Files[1] != m.Files[1] {
		t.Errorf("refreshing mtimes changed the manifest's content: %+v", got)
	}
	// While another gsim holds the key (it may be replacing the object), the
	// manifest is left alone; the object is still complete.
	os.Chtimes(p, later.Add(time.Hour), later.Add(time.Hour))
	l, _, _ := s.Lock(context.Background(), "k", nil)
	if r := s.Check("k"); !r.Complete {
		t.Fatalf("touched object, key held: %+v", r)
	}
	l.Unlock()
	if got, _ := ReadManifest(s.ObjectDir("k")); got.Files[0].MtimeNs != later.UnixNano() {
		t.Error("manifest rewritten while another gsim held the key")
	}
}

// An unlinked object whose key someone holds (a gsim status recording its
// mtimes) is left for a later clean.
func TestCleanSkipsHeldObject(t *testing.T) {
	s, _ := Open(t.TempDir())
	commitOne(t, s, tk("busy"), map[string]string{"a": "1"})
	l, _, _ := s.Lock(context.Background(), tk("busy"), nil)
	if _, err := s.Clean(false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.ObjectDir(tk("busy"))); err != nil {
		t.Error("clean removed an object whose key was held")
	}
	l.Unlock()
	s.Clean(false)
	if _, err := os.Stat(s.ObjectDir(tk("busy"))); !os.IsNotExist(err) {
		t.Error("clean kept an unlinked object once its key was free")
	}
}

// A gsim killed between making a link's temporary name and renaming it
// leaves runs/<exp>/.tmp-<pid>-<n>; it is no link of an instance, so clean
// removes it rather than keeping its object forever.
func TestCleanRemovesUnfinishedLink(t *testing.T) {
	s, _ := Open(t.TempDir())
	commitOne(t, s, tk("k"), map[string]string{"a": "1"})
	os.MkdirAll(s.LinkDir("exp"), 0o755)
	tmp := filepath.Join(s.LinkDir("exp"), ".tmp-999999-1")
	if err := os.Symlink(filepath.Join("..", "..", "objects", tk("k")), tmp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Clean(false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tmp, s.ObjectDir(tk("k"))} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("clean kept %s", p)
		}
	}
}

// tk is a key-shaped name for a test's object: clean touches only those.
func tk(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}
