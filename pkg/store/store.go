// Package store keeps stage outputs in folders named by their key. An output
// becomes an object only through Commit: its files are hashed, a manifest is
// written last and the folder is renamed into objects/ in one step, so a
// folder without a valid manifest is never trusted. See docs/architecture.md
// for the layout.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Store is an artifact root (tmp/ by default).
type Store struct {
	Root string
}

var subdirs = []string{"objects", "staging", "failed", "locks", "runs"}

// Open makes root's layout if needed.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", root, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("store %s is a file; give --store (or $GSIM_STORE) a folder, e.g. tmp", abs)
	}
	for _, d := range subdirs {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("store %s: %w; give --store (or $GSIM_STORE) a folder gsim can write", abs, err)
		}
	}
	return &Store{Root: abs}, nil
}

// ObjectDir is where the complete output of key lives.
func (s *Store) ObjectDir(key string) string { return filepath.Join(s.Root, "objects", key) }

// FailedDir is where the last failed attempt of key is kept.
func (s *Store) FailedDir(key string) string { return filepath.Join(s.Root, "failed", key) }

// FailedLog is the log of the last failed attempt of key.
func (s *Store) FailedLog(key string) string { return filepath.Join(s.FailedDir(key), LogFile) }

var stagingSeq atomic.Int64

// NewStaging makes an empty staging folder for one attempt at key. Call it
// while holding key's lock: Clean treats staging folders whose key lock it can
// take as leftovers.
func (s *Store) NewStaging(key string) (string, error) {
	name := fmt.Sprintf("%s-%d-%d", key, os.Getpid(), stagingSeq.Add(1))
	dir := filepath.Join(s.Root, "staging", name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("staging for %s: %w", key, err)
	}
	return dir, nil
}

// Commit adopts a finished, validated staging folder as the object of
// m.Key: it hashes the outputs into m.Files and m.OutputDigest, writes the
// manifest last, syncs, and renames the folder into objects/. An existing
// object of the same key (a forced or corrupt rerun) is swapped out
// atomically, so readers see the old or the new object, never neither.
func (s *Store) Commit(staging string, m *Manifest) error {
	defer forgetTrusted(staging)
	files, err := hashTree(staging, true)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Link == "" || !filepath.IsAbs(f.Link) {
			continue
		}
		if rel, err := filepath.Rel(staging, f.Link); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return fmt.Errorf("output %s is a symbolic link to %s, inside the attempt's folder by absolute path; it would dangle once the folder moves into objects/: make the link relative (ln -sr)", f.Path, f.Link)
		}
	}
	m.SchemaVersion = ManifestVersion
	m.Files = files
	m.OutputDigest = OutputDigest(files, m.Volatile...)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest of %s: %w", m.Key, err)
	}
	if err := writeFileSync(filepath.Join(staging, ManifestFile), append(b, '\n')); err != nil {
		return fmt.Errorf("write manifest of %s: %w", m.Key, err)
	}
	if err := syncDir(staging); err != nil {
		return err
	}
	obj := s.ObjectDir(m.Key)
	if err := os.Rename(staging, obj); err != nil {
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("adopt %s: %w", m.Key, err)
		}
		// Swap with the old object; what lands in staging is the old one.
		if err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, obj, unix.RENAME_EXCHANGE); err != nil {
			return fmt.Errorf("replace object %s: %w", m.Key, err)
		}
		if err := os.RemoveAll(staging); err != nil {
			return fmt.Errorf("remove replaced object %s: %w", m.Key, err)
		}
	}
	return syncDir(filepath.Dir(obj))
}

// Fail keeps a failed attempt's folder (with its stage.log) as failed/<key>,
// replacing the previous failed attempt.
func (s *Store) Fail(staging, key string) (string, error) {
	forgetTrusted(staging)
	dst := s.FailedDir(key)
	if err := os.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("remove old failed attempt of %s: %w", key, err)
	}
	if err := os.Rename(staging, dst); err != nil {
		return "", fmt.Errorf("keep failed attempt of %s: %w", key, err)
	}
	return dst, nil
}

// ClearFailed removes the failed attempt of key, after a success.
func (s *Store) ClearFailed(key string) error {
	return os.RemoveAll(s.FailedDir(key))
}

// Result is what Check found for a key.
type Result struct {
	Manifest *Manifest
	Complete bool
	// Problem says why an existing object is not complete.
	Problem string
	// Exists is false when there is no object folder at all.
	Exists bool
}

// Check tells whether key's object is complete without reading its files: the
// manifest must be valid and every file's recorded size and mtime must match.
// A file whose mtime alone changed is rehashed (a touch must not cost a
// rerun) and its new mtime recorded, so the next run trusts it again.
func (s *Store) Check(key string) Result {
	dir := s.ObjectDir(key)
	m, err := ReadManifest(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return Result{}
			}
			return Result{Exists: true, Problem: "no manifest"}
		}
		return Result{Exists: true, Problem: err.Error()}
	}
	if m.Key != key {
		return Result{Exists: true, Manifest: m, Problem: fmt.Sprintf("manifest names key %s", m.Key)}
	}
	touched := map[string]int64{}
	for _, f := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		st, err := os.Lstat(p)
		if err != nil {
			return Result{Exists: true, Manifest: m, Problem: f.Path + ": missing"}
		}
		if st.Size() != f.Size {
			return Result{Exists: true, Manifest: m, Problem: f.Path + ": size changed"}
		}
		if st.ModTime().UnixNano() != f.MtimeNs {
			e, err := hashEntry(p, f.Path, st.Mode().Type(), false)
			if err != nil || e.SHA256 != f.SHA256 {
				return Result{Exists: true, Manifest: m, Problem: f.Path + ": modified"}
			}
			// The mtime seen before hashing: a write during the hash
			// changes it again, so the next Check rehashes.
			touched[f.Path] = st.ModTime().UnixNano()
		}
	}
	if len(touched) > 0 {
		s.recordMtimes(key, m, touched)
	}
	return Result{Exists: true, Manifest: m, Complete: true}
}

// recordMtimes rewrites key's manifest with the mtimes of files Check has
// just rehashed, atomically, and only while no one else holds the key: a
// gsim holding it may be swapping in a new object, whose manifest this one
// must not overwrite. Failing to record is harmless (the next Check rehashes).
func (s *Store) recordMtimes(key string, seen *Manifest, touched map[string]int64) {
	l, ok, err := s.TryLock(key)
	if err != nil || !ok {
		return
	}
	defer l.Unlock()
	dir := s.ObjectDir(key)
	m, err := ReadManifest(dir)
	if err != nil || m.Key != key || m.OutputDigest != seen.OutputDigest || !m.StartedAt.Equal(seen.StartedAt) {
		return
	}
	for i, f := range m.Files {
		if mt, ok := touched[f.Path]; ok {
			m.Files[i].MtimeNs = mt
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.tmp-%d-%d", ManifestFile, os.Getpid(), stagingSeq.Add(1)))
	if err := writeFileSync(tmp, append(b, '\n')); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestFile)); err != nil {
		os.Remove(tmp)
		return
	}
	_ = syncDir(dir)
}

// Problem is one corrupt file found by Verify.
type Problem struct {
	Path string
	What string // "sha256 mismatch", "size changed", "missing"
}

func (p Problem) String() string { return p.Path + ": " + p.What }

// Verify rehashes every file of key's object against its manifest.
func (s *Store) Verify(key string) ([]Problem, error) {
	dir := s.ObjectDir(key)
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", key, err)
	}
	var out []Problem
	for _, f := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		st, err := os.Lstat(p)
		switch {
		case err != nil:
			out = append(out, Problem{f.Path, "missing"})
			continue
		case st.Size() != f.Size:
			out = append(out, Problem{f.Path, "size changed"})
			continue
		}
		e, err := hashEntry(p, f.Path, st.Mode().Type(), false)
		if err != nil || e.SHA256 != f.SHA256 {
			out = append(out, Problem{f.Path, "sha256 mismatch"})
		}
	}
	return out, nil
}

// LinkDir is the folder of an experiment's friendly links.
func (s *Store) LinkDir(experiment string) string {
	return filepath.Join(s.Root, "runs", experiment)
}

// Link points runs/<experiment>/<instance> at key's object with a relative
// symlink, replaced atomically.
func (s *Store) Link(experiment, instance, key string) error {
	dir := s.LinkDir(experiment)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := filepath.Join(dir, LinkName(instance))
	target := filepath.Join("..", "..", "objects", key)
	if cur, err := os.Readlink(name); err == nil && cur == target {
		removeLegacyLink(dir, instance)
		return nil
	}
	tmp := filepath.Join(dir, linkTmpPrefix+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(stagingSeq.Add(1), 10))
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", instance, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", instance, err)
	}
	removeLegacyLink(dir, instance)
	return nil
}

// removeLegacyLink drops the link an older gsim made for instance, once the
// new one exists, so that only one name points at the instance's object.
func removeLegacyLink(dir, instance string) {
	if old := legacyLinkName(instance); old != LinkName(instance) {
		p := filepath.Join(dir, old)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			os.Remove(p)
		}
	}
}

// linkTmpPrefix names a link being made; instance ids never start with '.'.
const linkTmpPrefix = ".tmp-"

// Linked returns the key that runs/<experiment>/<instance> points at.
func (s *Store) Linked(experiment, instance string) (string, bool) {
	t, err := os.Readlink(filepath.Join(s.LinkDir(experiment), LinkName(instance)))
	if err != nil {
		// A store made by an older gsim names links by the raw id.
		if t, err = os.Readlink(filepath.Join(s.LinkDir(experiment), legacyLinkName(instance))); err != nil {
			return "", false
		}
	}
	return filepath.Base(t), true
}

// Since is a small helper for durations in manifests.
func Since(start time.Time) float64 { return time.Since(start).Seconds() }
