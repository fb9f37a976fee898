package store

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// A stage that writes gigabytes should not have every byte read back at
// commit just to hash it. A writer in this process may instead hash the bytes
// as it writes them (HashingFile) and hand the digest over; Commit then takes
// it in place of reading the file, when the file's size and modification time
// are still exactly what they were when the writer closed it.
//
// This is the same trust Check already gives a complete object (size and
// mtime unchanged means content unchanged; `--verify` rehashes), and nothing
// outside this process can add to it: a digest comes only from bytes that
// passed through HashingFile here, and an entry is used once, by the Commit
// of the folder it lies in.

type writtenDigest struct {
	size    int64
	mtimeNs int64
	sum     string
}

var (
	trustMu sync.Mutex
	trusted = map[string]writtenDigest{}
)

// trustWritten records the digest of path as it is now.
func trustWritten(path, sum string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	st, err := os.Lstat(abs)
	if err != nil {
		return err
	}
	trustMu.Lock()
	trusted[abs] = writtenDigest{size: st.Size(), mtimeNs: st.ModTime().UnixNano(), sum: sum}
	trustMu.Unlock()
	return nil
}

// takeTrusted returns the recorded digest of path if the file still has the
// recorded size and mtime, and forgets it either way.
func takeTrusted(path string, st fs.FileInfo) (string, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false
	}
	trustMu.Lock()
	d, ok := trusted[abs]
	delete(trusted, abs)
	trustMu.Unlock()
	if !ok || !st.Mode().IsRegular() || d.size != st.Size() || d.mtimeNs != st.ModTime().UnixNano() {
		return "", false
	}
	return d.sum, true
}

// forgetTrusted drops the entries under dir (a failed or removed attempt).
func forgetTrusted(dir string) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	prefix := abs + string(filepath.Separator)
	trustMu.Lock()
	for p := range trusted {
		if len(p) > len(prefix) && p[:len(prefix)] == prefix {
			delete(trusted, p)
		}
	}
	trustMu.Unlock()
}

// HashingFile is a file being written whose sha256 is computed from the
// bytes as they go out. Close syncs it to disk and hands the digest to the
// store, so committing the folder does not read the file again.
type HashingFile struct {
	f    *os.File
	h    hash.Hash
	path string
	err  error
}

// CreateHashing creates (or truncates) path for writing through a hash.
func CreateHashing(path string) (*HashingFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &HashingFile{f: f, h: sha256.New(), path: path}, nil
}

// Write writes p to the file and the hash.
func (w *HashingFile) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	if err != nil {
		w.err = err
	}
	return n, err
}

// Close syncs and closes the file and records its digest; after an earlier
// write error it only closes.
func (w *HashingFile) Close() error {
	if w.err != nil {
		w.f.Close()
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	return trustWritten(w.path, hex.EncodeToString(w.h.Sum(nil)))
}

// Abort closes the file without recording anything.
func (w *HashingFile) Abort() { w.f.Close() }

var _ io.WriteCloser = (*HashingFile)(nil)
