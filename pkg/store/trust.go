package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A trust table remembers, for the objects one experiment uses, what Check
// needs from each manifest, together with the manifest's signature (size,
// mtime, ctime, inode). While the signature holds, the manifest is the one
// the entry was made from, so Check can skip reading and decoding it (the
// bulk of a no-op run). It still checks every output file's size and mtime
// against the entry, exactly as against the manifest. Any manifest rewrite
// (a replaced object, refreshed mtimes) is a new inode and a new ctime; a
// table that is damaged, or of another format, is ignored. Losing it costs
// only time.
type trustTable struct {
	path string
	mu   sync.Mutex
	// entries holds what was loaded and what Check added; seen marks the
	// keys this process looked at.
	entries map[string]*trustEntry
	seen    map[string]bool
	dirty   bool
}

type trustEntry struct {
	sig     manifestSig
	key     string
	digest  string
	started int64
	ended   int64
	host    string
	files   []FileEntry
}

// manifestSig identifies one version of a manifest file.
type manifestSig struct {
	size, mtime, ctime int64
	ino, dev           uint64
}

func sigOfInfo(fi fs.FileInfo) manifestSig {
	s := manifestSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ctime = st.Ctim.Nano()
		s.ino, s.dev = st.Ino, uint64(st.Dev)
	}
	return s
}

// racyWindow: a manifest changed this recently could change again within
// the same clock tick without its signature showing it, so it is not
// remembered yet.
const racyWindow = time.Second

// UseTrust makes Check consult and fill the trust table of experiment (a
// name; one table per experiment keeps what a run reads small). SaveTrust
// writes it back.
func (s *Store) UseTrust(experiment string) {
	sum := sha256.Sum256([]byte(experiment))
	t := &trustTable{
		path:    filepath.Join(s.CacheDir("trust"), hex.EncodeToString(sum[:12])),
		entries: map[string]*trustEntry{},
		seen:    map[string]bool{},
	}
	if b, err := os.ReadFile(t.path); err == nil {
		if es, err := decodeTrust(b); err == nil {
			for _, e := range es {
				t.entries[e.key] = e
			}
		}
	}
	s.trust.Store(t)
}

// SaveTrust writes the trust table if Check added to it, keeping the
// entries this process used and those of objects that still exist.
func (s *Store) SaveTrust() error {
	t := s.trust.Load()
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// A status or a dry run where there is no store makes none.
	if !t.dirty || !IsStore(s.Root) {
		return nil
	}
	var keep []*trustEntry
	for key, e := range t.entries {
		if !t.seen[key] {
			if _, err := os.Lstat(s.ObjectDir(key)); err != nil {
				continue
			}
		}
		keep = append(keep, e)
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", t.path, os.Getpid(), stagingSeq.Add(1))
	if err := os.WriteFile(tmp, encodeTrust(keep), 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, t.path); err != nil {
		os.Remove(tmp)
		return err
	}
	t.dirty = false
	return nil
}

// trusted returns the manifest as the trust table remembers it, if its
// signature still holds; sig is the manifest's signature now.
func (t *trustTable) trusted(key string, sig manifestSig) *Manifest {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[key] = true
	e := t.entries[key]
	if e == nil || e.sig != sig {
		return nil
	}
	return &Manifest{
		SchemaVersion: ManifestVersion, Key: e.key, Files: e.files, OutputDigest: e.digest,
		StartedAt: time.Unix(0, e.started).UTC(), EndedAt: time.Unix(0, e.ended).UTC(), Host: e.host,
	}
}

// remember records a complete object's manifest, read with signature sig.
func (t *trustTable) remember(m *Manifest, sig manifestSig) {
	if limit := time.Now().Add(-racyWindow).UnixNano(); sig.mtime >= limit || sig.ctime >= limit {
		return
	}
	e := &trustEntry{sig: sig, key: m.Key, digest: m.OutputDigest, started: m.StartedAt.UnixNano(),
		ended: m.EndedAt.UnixNano(), host: m.Host, files: m.Files}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen[m.Key] = true
	t.entries[m.Key] = e
	t.dirty = true
}

const trustMagic = "gsim-trust-v1\n"

func encodeTrust(es []*trustEntry) []byte {
	var b bytes.Buffer
	b.WriteString(trustMagic)
	u := func(v uint64) { b.Write(binary.AppendUvarint(nil, v)) }
	i := func(v int64) { b.Write(binary.AppendVarint(nil, v)) }
	str := func(s string) { u(uint64(len(s))); b.WriteString(s) }
	u(uint64(len(es)))
	for _, e := range es {
		str(e.key)
		i(e.sig.size)
		i(e.sig.mtime)
		i(e.sig.ctime)
		u(e.sig.ino)
		u(e.sig.dev)
		str(e.digest)
		i(e.started)
		i(e.ended)
		str(e.host)
		u(uint64(len(e.files)))
		for _, f := range e.files {
			str(f.Path)
			i(f.Size)
			i(f.MtimeNs)
			str(f.SHA256)
			str(f.Link)
		}
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

var errTrust = errors.New("not a trust table")

func decodeTrust(data []byte) ([]*trustEntry, error) {
	if len(data) < len(trustMagic)+sha256.Size || string(data[:len(trustMagic)]) != trustMagic {
		return nil, errTrust
	}
	body := data[:len(data)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], data[len(body):]) {
		return nil, errTrust
	}
	r := body[len(trustMagic):]
	bad := false
	u := func() uint64 {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			bad, r = true, nil
			return 0
		}
		r = r[n:]
		return v
	}
	i := func() int64 {
		v, n := binary.Varint(r)
		if n <= 0 {
			bad, r = true, nil
			return 0
		}
		r = r[n:]
		return v
	}
	str := func() string {
		n := u()
		if n > uint64(len(r)) {
			bad, r = true, nil
			return ""
		}
		s := string(r[:n])
		r = r[n:]
		return s
	}
	count := u()
	if count > uint64(len(r)) {
		return nil, errTrust
	}
	es := make([]*trustEntry, 0, count)
	for k := uint64(0); k < count && !bad; k++ {
		e := &trustEntry{key: str()}
		e.sig = manifestSig{size: i(), mtime: i(), ctime: i(), ino: u(), dev: u()}
		e.digest, e.started, e.ended, e.host = str(), i(), i(), str()
		nf := u()
		if nf > uint64(len(r)) {
			return nil, errTrust
		}
		e.files = make([]FileEntry, 0, nf)
		for j := uint64(0); j < nf && !bad; j++ {
			e.files = append(e.files, FileEntry{Path: str(), Size: i(), MtimeNs: i(), SHA256: str(), Link: str()})
		}
		es = append(es, e)
	}
	if bad || len(r) != 0 {
		return nil, errTrust
	}
	return es, nil
}
