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
	// trust, once UseTrust is called, lets Check skip reading manifests it
	// has seen unchanged.
	trust atomic.Pointer[trustTable]
}

// subdirs is the layout Open makes; a folder holding all of them as real
// folders is a store made before MarkerFile existed.
var subdirs = []string{"objects", "staging", "failed", "locks", "runs"}

// MarkerFile, at the top of a store, says the folder is one: gsim clean
// removes things only in a folder that has it (or gsim's full layout).
const MarkerFile = storeMarker

// Open makes root's layout (and its marker) if needed.
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
	if err := writeMarker(abs); err != nil {
		return nil, fmt.Errorf("store %s: %w; give --store (or $GSIM_STORE) a folder gsim can write", abs, err)
	}
	return &Store{Root: abs}, nil
}

// NotStoreError is a folder OpenExisting will not treat as a store.
type NotStoreError struct {
	Root string
	// Missing is true when nothing exists at Root.
	Missing bool
}

func (e *NotStoreError) Error() string {
	if e.Missing {
		return fmt.Sprintf("no gsim store at %s", e.Root)
	}
	return fmt.Sprintf("%s is not a gsim store (it has no %s and not gsim's layout: %s); give --store the folder gsim run made (tmp by default)",
		e.Root, MarkerFile, strings.Join(subdirs, "/, ")+"/")
}

// Is lets errors.Is(err, fs.ErrNotExist) find a missing store.
func (e *NotStoreError) Is(target error) bool { return e.Missing && target == fs.ErrNotExist }

// OpenExisting opens root only if it is a store, creating nothing: for
// commands that remove things (clean) or only look (status). A folder is a
// store if it holds MarkerFile, or, made by a gsim older than the marker,
// every folder of gsim's layout (and none of them is a link).
func OpenExisting(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &NotStoreError{Root: abs, Missing: true}
	case err != nil:
		return nil, fmt.Errorf("store %s: %w", abs, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("store %s is a file; give --store (or $GSIM_STORE) a folder, e.g. tmp", abs)
	}
	if !IsStore(abs) {
		return nil, &NotStoreError{Root: abs}
	}
	return &Store{Root: abs}, nil
}

// writeMarker writes MarkerFile once; a concurrent Open may win the race.
func writeMarker(abs string) error {
	p := filepath.Join(abs, MarkerFile)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", p, os.Getpid(), stagingSeq.Add(1))
	b := []byte(`{"gsim_store": 1, "note": "a gsim artifact store; gsim clean removes only what gsim made in it"}` + "\n")
	if err := writeFileSync(tmp, b); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// ObjectDir is where the complete output of key lives.
func (s *Store) ObjectDir(key string) string { return filepath.Join(s.Root, "objects", key) }

// CacheDir is a folder for what gsim remembers between runs that is no
// object (digests of files named by params); removing it costs only time.
func (s *Store) CacheDir(name string) string { return filepath.Join(s.Root, "cache", name) }

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
		if f.Link != "" {
			if err := checkLink(staging, f); err != nil {
				return err
			}
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
	// The object is read-only from the moment it exists: an editor or a
	// stray writer fails loudly instead of changing what was recorded.
	if err := sealFiles(staging); err != nil {
		return fmt.Errorf("make %s read-only: %w", m.Key, err)
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
// replacing the previous failed attempt, unless this attempt could write no
// log at all (a full disk): then the earlier attempt's diagnostic is worth
// more than an empty file, so it is kept and this attempt dropped. It
// returns the failed folder kept.
func (s *Store) Fail(staging, key string) (string, error) {
	forgetTrusted(staging)
	dst := s.FailedDir(key)
	if !hasLog(staging) && hasLog(dst) {
		appendNote(filepath.Join(dst, LogFile), fmt.Sprintf(
			"gsim: a later attempt (%s) failed as well and could write no log of its own (is the disk full?); the log above is the earlier attempt's\n",
			time.Now().UTC().Format(time.RFC3339)))
		if err := os.RemoveAll(staging); err != nil {
			return dst, fmt.Errorf("remove failed attempt of %s: %w", key, err)
		}
		return dst, nil
	}
	if err := os.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("remove old failed attempt of %s: %w", key, err)
	}
	if err := os.Rename(staging, dst); err != nil {
		return "", fmt.Errorf("keep failed attempt of %s: %w", key, err)
	}
	return dst, nil
}

// hasLog tells whether dir holds a stage.log with something in it.
func hasLog(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, LogFile))
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// appendNote adds a line to a log, if the disk lets it.
func appendNote(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(line)
}

// ClearFailed removes the failed attempt of key, after a success.
func (s *Store) ClearFailed(key string) error {
	return os.RemoveAll(s.FailedDir(key))
}

// Result is what Check found for a key.
type Result struct {
	// Manifest is the object's manifest. Taken from the trust table (see
	// UseTrust) it holds only what Check needs: key, files, output digest,
	// start and end times, host; ReadManifest reads all of it.
	Manifest *Manifest
	Complete bool
	// Problem says why an existing object is not complete.
	Problem string
	// Exists is false when there is no object folder at all.
	Exists bool
	// Damaged is true when the object was committed and has changed since:
	// a file missing or different, its manifest gone or unreadable. That is
	// corruption, unlike a manifest another gsim version wrote.
	Damaged bool
}

// Check tells whether key's object is complete without reading its files: the
// manifest must be valid and every file's recorded size and mtime must match.
// A file whose mtime alone changed is rehashed (a touch must not cost a
// rerun) and its new mtime recorded, so the next run trusts it again.
func (s *Store) Check(key string) Result {
	dir := s.ObjectDir(key)
	var m *Manifest
	var err error
	var sig manifestSig
	t := s.trust.Load()
	if t != nil {
		// The signature before the read: a manifest replaced meanwhile is
		// another inode, which the next Check will not take for this one.
		if fi, serr := os.Lstat(filepath.Join(dir, ManifestFile)); serr == nil {
			sig = sigOfInfo(fi)
			m = t.trusted(key, sig)
		}
	}
	fromTrust := m != nil
	if m == nil {
		m, err = ReadManifest(dir)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return Result{}
			}
			return Result{Exists: true, Damaged: true, Problem: ManifestFile + ": missing"}
		}
		return Result{Exists: true, Damaged: !errors.Is(err, ErrManifestVersion), Problem: err.Error()}
	}
	if m.Key != key {
		return Result{Exists: true, Damaged: true, Manifest: m, Problem: fmt.Sprintf("manifest names key %s", m.Key)}
	}
	var touched map[string]int64
	var st unix.Stat_t
	for _, f := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := unix.Lstat(p, &st); err != nil {
			return Result{Exists: true, Damaged: true, Manifest: m, Problem: f.Path + ": missing"}
		}
		if st.Size != f.Size {
			return Result{Exists: true, Damaged: true, Manifest: m, Problem: f.Path + ": size changed"}
		}
		if st.Mtim.Nano() != f.MtimeNs {
			fi, err := os.Lstat(p)
			if err != nil {
				return Result{Exists: true, Damaged: true, Manifest: m, Problem: f.Path + ": missing"}
			}
			e, err := hashEntry(p, f.Path, fi.Mode().Type(), false)
			if err != nil || e.SHA256 != f.SHA256 {
				return Result{Exists: true, Damaged: true, Manifest: m, Problem: f.Path + ": modified"}
			}
			// The mtime seen before hashing: a write during the hash
			// changes it again, so the next Check rehashes.
			if touched == nil {
				touched = map[string]int64{}
			}
			touched[f.Path] = st.Mtim.Nano()
		}
	}
	if len(touched) > 0 {
		s.recordMtimes(key, m, touched)
	} else if t != nil && !fromTrust && sig.ino != 0 {
		t.remember(m, sig)
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
	_ = os.Chmod(tmp, readOnly)
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
	name := filepath.Join(dir, LinkName(instance))
	target := filepath.Join("..", "..", "objects", key)
	// The common case of a no-op run, in one system call: the link is right
	// (and an older gsim's link beside it went when this one was made).
	if cur, err := os.Readlink(name); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
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
