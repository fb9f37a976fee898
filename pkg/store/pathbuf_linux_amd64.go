package store

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// lstatz lstats the NUL-terminated path at p (n bytes before the NUL)
// without copying it, as unix.Lstat would after copying.
func lstatz(p *byte, _ int, st *unix.Stat_t) error {
	cwd := unix.AT_FDCWD
	for {
		_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(cwd), uintptr(unsafe.Pointer(p)),
			uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}
