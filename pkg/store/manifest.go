package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ManifestVersion is bumped when the manifest JSON changes incompatibly.
const ManifestVersion = 1

// Reserved names at the top of an object folder. They describe the run
// rather than being its output, so they are not in Files nor in the output
// digest: a rerun that writes identical outputs keeps downstream keys.
const (
	ManifestFile = "manifest.json"
	LogFile      = "stage.log"
	SpecFile     = "spec.json"
)

func reserved(rel string) bool {
	return rel == ManifestFile || rel == LogFile || rel == SpecFile
}

// Manifest records how an object was made and what it holds.
type Manifest struct {
	SchemaVersion int               `json:"schema_version"`
	Key           string            `json:"key"`
	Kind          string            `json:"kind"`
	Version       string            `json:"version"`
	Instance      string            `json:"instance"`
	Experiment    string            `json:"experiment"`
	Params        map[string]any    `json:"params"`
	Fingerprint   map[string]string `json:"fingerprint,omitempty"`
	Inputs        []InputRef        `json:"inputs"`
	Files         []FileEntry       `json:"files"`
	OutputDigest  string            `json:"output_digest"`
	// Volatile lists output files that describe the run (a timestamp) rather
	// than its result: they are kept and verified, but not in OutputDigest.
	Volatile    []string  `json:"volatile,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at"`
	DurationS   float64   `json:"duration_s"`
	Host        string    `json:"host"`
	GsimVersion string    `json:"gsim_version"`
	ExitStatus  int       `json:"exit_status"`
}

// FileEntry is one output file. Size and MtimeNs let Check trust a file
// without reading it; SHA256 is what Verify compares.
type FileEntry struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
	// Link is the target of a symbolic link (then SHA256 hashes the target).
	Link string `json:"link,omitempty"`
}

// ErrManifestVersion is wrapped by ReadManifest's error for a manifest
// another gsim version wrote: not damage, but not this gsim's to trust.
var ErrManifestVersion = errors.New("another manifest version")

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	bp := manifestBufs.Get().(*[]byte)
	defer manifestBufs.Put(bp)
	b, err := readFile(filepath.Join(dir, ManifestFile), bp)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.SchemaVersion != ManifestVersion {
		return nil, fmt.Errorf("%s: manifest schema_version %d, this gsim reads %d: %w",
			filepath.Join(dir, ManifestFile), m.SchemaVersion, ManifestVersion, ErrManifestVersion)
	}
	return &m, nil
}

// OutputDigest is the sha256 of the sorted (path, size, sha256) list, less
// the volatile paths.
func OutputDigest(files []FileEntry, volatile ...string) string {
	sorted := append([]FileEntry(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	skip := map[string]bool{}
	for _, v := range volatile {
		skip[v] = true
	}
	h := sha256.New()
	for _, f := range sorted {
		if skip[f.Path] {
			continue
		}
		fmt.Fprintf(h, "%d:%s %d %s\n", len(f.Path), f.Path, f.Size, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashTree hashes every output file under dir, fsyncing each so that the
// manifest written after it never describes bytes still in the page cache.
func hashTree(dir string, sync bool) ([]FileEntry, error) {
	var out []FileEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() || reserved(rel) {
			return nil
		}
		e, err := hashEntry(p, rel, d.Type(), sync)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hash outputs in %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func hashEntry(p, rel string, typ fs.FileMode, sync bool) (FileEntry, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return FileEntry{}, err
	}
	e := FileEntry{Path: rel, Size: st.Size(), MtimeNs: st.ModTime().UnixNano()}
	if typ&fs.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return FileEntry{}, err
		}
		sum := sha256.Sum256([]byte(target))
		e.Link, e.SHA256 = target, hex.EncodeToString(sum[:])
		return e, nil
	}
	if !typ.IsRegular() {
		return FileEntry{}, fmt.Errorf("%s: not a regular file or link; stages may only write files", rel)
	}
	if sync {
		// At commit, a digest this process computed while writing the file
		// (trusted.go) stands for reading it back.
		if sum, ok := takeTrusted(p, st); ok {
			e.SHA256 = sum
			return e, nil
		}
	}
	sum, err := hashFile(p, sync)
	if err != nil {
		return FileEntry{}, err
	}
	e.SHA256 = sum
	return e, nil
}

func hashFile(p string, sync bool) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("fsync %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

var manifestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// readFile reads a small file into *bp with plain system calls: a no-op run
// reads every manifest, and os.File's set-up for the runtime poller costs
// more than the read.
func readFile(path string, bp *[]byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			*bp = b
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
