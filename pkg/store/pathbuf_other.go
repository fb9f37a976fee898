//go:build !(linux && amd64)

package store

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// lstatz is unix.Lstat of the n bytes at p.
func lstatz(p *byte, n int, st *unix.Stat_t) error {
	return unix.Lstat(string(unsafe.Slice(p, n)), st)
}
