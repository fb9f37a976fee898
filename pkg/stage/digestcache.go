package stage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fileSig is what trusting a file without reading it compares. Besides
// size and mtime it holds the ctime, which no user tool can set back (cp -p,
// rsync -t and touch -d all can set the mtime), and the inode, so a file
// replaced by another with the same size and mtime is still rehashed.
type fileSig struct {
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Ino     uint64 `json:"ino"`
	Dev     uint64 `json:"dev"`
}

func sigOf(fi fs.FileInfo) fileSig {
	s := fileSig{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.CtimeNs = st.Ctim.Nano()
		s.Ino, s.Dev = st.Ino, uint64(st.Dev)
	}
	return s
}

// settled tells whether a file was last changed long enough before t that a
// write in the same clock tick as the hash (file times are coarse) cannot
// hide behind an unchanged signature.
func (s fileSig) settled(t time.Time) bool {
	limit := t.Add(-racyWindow).UnixNano()
	return s.MtimeNs < limit && s.CtimeNs < limit
}

const racyWindow = time.Second

type byPath struct {
	p []string
	s []fileSig
}

func (b byPath) Len() int           { return len(b.p) }
func (b byPath) Less(i, j int) bool { return b.p[i] < b.p[j] }
func (b byPath) Swap(i, j int) {
	b.p[i], b.p[j] = b.p[j], b.p[i]
	b.s[i], b.s[j] = b.s[j], b.s[i]
}

// dirSig folds a folder's file list and each file's signature into one.
func dirSig(dir string, files []string, sigs []fileSig) fileSig {
	h := sha256.New()
	var newest fileSig
	for i, f := range files {
		rel, _ := filepath.Rel(dir, f)
		s := sigs[i]
		fmt.Fprintf(h, "%s\x00%d %d %d %d %d\n", rel, s.Size, s.MtimeNs, s.CtimeNs, s.Ino, s.Dev)
		newest.MtimeNs = max(newest.MtimeNs, s.MtimeNs)
		newest.CtimeNs = max(newest.CtimeNs, s.CtimeNs)
	}
	sum := h.Sum(nil)
	// Size and inode carry the list's hash; the times are the newest file's,
	// so settled means every file settled.
	newest.Size = int64(len(files))
	for i := 0; i < 8; i++ {
		newest.Ino = newest.Ino<<8 | uint64(sum[i])
		newest.Dev = newest.Dev<<8 | uint64(sum[8+i])
	}
	return newest
}

// digestCache remembers digests in memory for the process and, once
// UseDigestCache names a folder, in files there for later processes.
type digestCache struct {
	mem sync.Map // kind + "\x00" + abs path → cached
	dir atomic.Pointer[string]
	// skip is a folder whose files are not worth keeping (the store itself:
	// its objects are trusted through their manifests).
	skip atomic.Pointer[string]
}

type cached struct {
	Path   string  `json:"path"`
	Kind   string  `json:"kind"`
	Sig    fileSig `json:"sig"`
	SHA256 string  `json:"sha256"`
}

var digests digestCache

// UseDigestCache keeps the digests FileDigest and DirDigest compute in dir
// (one small JSON file each), so a later gsim trusts a file named by params
// by its signature (size, mtime, ctime, inode) instead of rehashing it, as
// it trusts outputs by size and mtime. Files under skip are not kept.
// Empty dir turns the folder off; the in-process memory stays.
func UseDigestCache(dir, skip string) {
	digests.dir.Store(&dir)
	digests.skip.Store(&skip)
}

func (c *digestCache) get(kind, path string, sig fileSig, compute func() (string, error)) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return compute()
	}
	id := kind + "\x00" + abs
	if v, ok := c.mem.Load(id); ok && v.(cached).Sig == sig {
		return v.(cached).SHA256, nil
	}
	file := c.file(id, abs)
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			var e cached
			if json.Unmarshal(b, &e) == nil && e.Path == abs && e.Kind == kind && e.Sig == sig && len(e.SHA256) == 64 {
				c.mem.Store(id, e)
				return e.SHA256, nil
			}
		}
	}
	start := time.Now()
	d, err := compute()
	if err != nil || !sig.settled(start) {
		return d, err
	}
	e := cached{Path: abs, Kind: kind, Sig: sig, SHA256: d}
	c.mem.Store(id, e)
	if file != "" {
		c.save(file, e)
	}
	return d, nil
}

// file is where id's entry lives, or "" when no folder is set or abs lies
// in the skipped one.
func (c *digestCache) file(id, abs string) string {
	dir := c.dir.Load()
	if dir == nil || *dir == "" {
		return ""
	}
	if skip := c.skip.Load(); skip != nil && *skip != "" {
		if abs == *skip || strings.HasPrefix(abs, *skip+string(filepath.Separator)) {
			return ""
		}
	}
	sum := sha256.Sum256([]byte(id))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(*dir, h[:2], h)
}

// save writes an entry atomically; failing to is harmless (the next run
// hashes again).
func (c *digestCache) save(file string, e cached) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", file, os.Getpid(), time.Now().UnixNano())
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
	}
}
