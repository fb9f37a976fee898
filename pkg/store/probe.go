package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Every guarantee about two gsim processes on one store (never the same key
// twice at once, clean never removing what a run uses) rests on flock(2).
// CheckLocks proves that locks work on the store's filesystem before a run
// relies on them; Mount.CrossNodeLocks says whether they also hold between
// machines, which a store shared by gsim processes on several nodes needs.

// flockFn is flock(2); tests replace it to play a filesystem whose locks are
// broken, which no test machine can mount.
var flockFn = unix.Flock

// LockError is a store whose locks cannot be trusted.
type LockError struct {
	Root string
	Msg  string
}

func (e *LockError) Error() string { return fmt.Sprintf("store %s: %s", e.Root, e.Msg) }

// CheckLocks takes an exclusive lock on a probe file, checks that a second
// open file of the same path is refused it while it is held and granted it
// once released. It fails on filesystems that refuse flock (Lustre mounted
// without -o flock, NFS without a lock manager) or that grant one lock twice.
func (s *Store) CheckLocks() error {
	dir := filepath.Join(s.Root, "locks")
	host, _ := os.Hostname()
	path := filepath.Join(dir, fmt.Sprintf(".probe-%s-%d-%d", host, os.Getpid(), stagingSeq.Add(1)))
	defer os.Remove(path)
	open := func() (*os.File, error) { return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644) }
	a, err := open()
	if err != nil {
		return fmt.Errorf("store %s: lock probe: %w", s.Root, err)
	}
	defer a.Close()
	b, err := open()
	if err != nil {
		return fmt.Errorf("store %s: lock probe: %w", s.Root, err)
	}
	defer b.Close()
	where := describeMount(s.Root)
	if err := flockFn(int(a.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return &LockError{s.Root, fmt.Sprintf("file locks do not work on %s (flock: %v); gsim needs them to keep two runs from running one stage at once. "+
			"Put the store (--store or $GSIM_STORE) on a filesystem with working flock: a local disk, NFSv4, or Lustre mounted with -o flock", where, err)}
	}
	err = flockFn(int(b.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return &LockError{s.Root, fmt.Sprintf("file locks on %s do not exclude each other (one lock was granted twice); "+
			"put the store (--store or $GSIM_STORE) on a filesystem with working flock: a local disk, NFSv4, or Lustre mounted with -o flock", where)}
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return &LockError{s.Root, fmt.Sprintf("file locks on %s fail while contended (flock: %v)", where, err)}
	}
	if err := flockFn(int(a.Fd()), unix.LOCK_UN); err != nil {
		return &LockError{s.Root, fmt.Sprintf("file locks on %s cannot be released (flock: %v)", where, err)}
	}
	if err := flockFn(int(b.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return &LockError{s.Root, fmt.Sprintf("a released file lock on %s stays taken (flock: %v)", where, err)}
	}
	return flockFn(int(b.Fd()), unix.LOCK_UN)
}

// Mount is the filesystem a path is on, as /proc/self/mountinfo says.
type Mount struct {
	Point  string
	FSType string
	Source string
	// Options are the mount's and the superblock's options together
	// (local_lock= is a superblock option of NFS).
	Options map[string]string
}

// MountOf finds the mount holding path (after resolving symbolic links).
func MountOf(path string) (Mount, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Mount{}, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return Mount{}, err
	}
	defer f.Close()
	var best Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m, ok := parseMountinfo(sc.Text())
		if !ok || !within(abs, m.Point) {
			continue
		}
		// The longest mount point wins; among equal ones, the last mounted.
		if len(m.Point) >= len(best.Point) {
			best = m
		}
	}
	if best.Point == "" {
		return Mount{}, fmt.Errorf("no mount holds %s", abs)
	}
	return best, sc.Err()
}

func within(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// parseMountinfo reads one line of /proc/self/mountinfo:
// "36 35 98:0 /root /mnt rw,noatime master:1 - nfs4 srv:/x rw,vers=4.2,local_lock=none".
func parseMountinfo(line string) (Mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return Mount{}, false
	}
	a, b := strings.Fields(pre), strings.Fields(post)
	if len(a) < 6 || len(b) < 3 {
		return Mount{}, false
	}
	m := Mount{Point: unescapeMount(a[4]), FSType: b[0], Source: unescapeMount(b[1]), Options: map[string]string{}}
	for _, opts := range []string{a[5], b[2]} {
		for _, o := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(o, "=")
			m.Options[k] = v
		}
	}
	return m, true
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var n int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &n); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// localFS are filesystems only this machine sees.
var localFS = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "tmpfs": true,
	"overlay": true, "zfs": true, "f2fs": true, "ramfs": true, "vfat": true}

// Local tells whether m is a filesystem of this machine only: compute nodes
// of a cluster cannot see a store there (unless the cluster is this machine).
func (m Mount) Local() bool { return localFS[m.FSType] }

// CrossNodeLocks is nil when flocks on m are seen by every machine that
// mounts it, and otherwise says why not and what to do. It knows the mount
// options that make locks local to one client: NFS's local_lock=flock|all
// and nolock, Lustre's localflock (or no flock at all).
func (m Mount) CrossNodeLocks() error {
	where := fmt.Sprintf("%s (%s from %s)", m.Point, m.FSType, m.Source)
	switch {
	case m.FSType == "nfs" || m.FSType == "nfs4":
		if ll := m.Options["local_lock"]; ll == "flock" || ll == "all" {
			return fmt.Errorf("%s is mounted with local_lock=%s: file locks are kept on this machine only, so gsim processes on two machines could run one stage at once; remount it with local_lock=none (the default) or keep the store elsewhere", where, ll)
		}
		if _, ok := m.Options["nolock"]; ok {
			return fmt.Errorf("%s is mounted with nolock: file locks are kept on this machine only; remount it without nolock or keep the store elsewhere", where)
		}
	case m.FSType == "lustre":
		if _, ok := m.Options["localflock"]; ok {
			return fmt.Errorf("%s is mounted with localflock: file locks are kept on this machine only; remount it with -o flock or keep the store elsewhere", where)
		}
		if _, ok := m.Options["flock"]; !ok {
			return fmt.Errorf("%s is mounted without -o flock: Lustre then refuses file locks; remount it with -o flock or keep the store elsewhere", where)
		}
	}
	return nil
}

func describeMount(path string) string {
	m, err := MountOf(path)
	if err != nil {
		return path
	}
	opts := make([]string, 0, len(m.Options))
	for k := range m.Options {
		if k == "local_lock" || k == "flock" || k == "localflock" || k == "nolock" || k == "vers" {
			opts = append(opts, strings.TrimSuffix(k+"="+m.Options[k], "="))
		}
	}
	sort.Strings(opts)
	s := fmt.Sprintf("%s (%s", m.Point, m.FSType)
	if len(opts) > 0 {
		s += ", " + strings.Join(opts, ",")
	}
	return s + ")"
}
