package store

import (
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// pathBuf builds the NUL-terminated paths Check stats, so that checking an
// object's files allocates nothing: a no-op run of a big sweep stats tens
// of thousands of them, and on a virtual machine every fresh page of heap
// is a costly fault.
type pathBuf struct{ b [512]byte }

// lstat is unix.Lstat(filepath.Join(dir, filepath.FromSlash(rel))).
func (p *pathBuf) lstat(dir, rel string, st *unix.Stat_t) error {
	// dir/rel is what Join gives only for a clean, relative rel that stays
	// inside dir; anything else (a damaged manifest's "../x") takes Join.
	// A NUL would end the path early here, where unix.Lstat refuses it: a
	// damaged manifest naming "o.txt\x00x" must not pass for o.txt.
	if len(dir)+len(rel)+2 > len(p.b) || rel == "" || rel[0] == '/' || rel == ".." ||
		strings.HasPrefix(rel, "../") || path.Clean(rel) != rel || filepath.Separator != '/' ||
		strings.IndexByte(rel, 0) >= 0 || strings.IndexByte(dir, 0) >= 0 {
		return unix.Lstat(filepath.Join(dir, filepath.FromSlash(rel)), st)
	}
	n := copy(p.b[:], dir)
	p.b[n] = '/'
	n++
	n += copy(p.b[n:], rel)
	p.b[n] = 0
	return lstatz(&p.b[0], n, st)
}
