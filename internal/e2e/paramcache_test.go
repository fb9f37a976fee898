package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// opens counts how often any process opens a file, through inotify.
type opens struct {
	fd int
}

func watchOpens(t *testing.T, path string) *opens {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify unavailable: %v", err)
	}
	// Closes too: inotify merges identical consecutive events, and an
	// open, close, open, close sequence has none.
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_CLOSE_NOWRITE); err != nil {
		unix.Close(fd)
		t.Skipf("inotify watch: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &opens{fd: fd}
}

// take returns the opens seen since the last call.
func (o *opens) take() int {
	n := 0
	buf := make([]byte, 64*unix.SizeofInotifyEvent)
	for {
		k, err := unix.Read(o.fd, buf)
		if k <= 0 || err != nil {
			return n
		}
		for off := 0; off < k; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_OPEN != 0 {
				n++
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

const paramFile = `name: p
matrix:
  rate: [1, 2, 3, 4, 5, 6]
stages:
  w:
    uses: workload
    with:
      model: Qwen/Qwen3-0.6B
      num_requests: 4
      arrival: {process: poisson, rate: "${{ matrix.rate }}"}
      prefill: {dist: empirical, path: lengths.csv}
      decode: {dist: uniform, min: 1, max: 8}
`

// A file named by params (here by six matrix cells) is hashed once per gsim
// process, and a later gsim trusts it by its signature without reading it,
// until it changes.
func TestParamFileHashedOnceAndTrustedAcrossRuns(t *testing.T) {
	e := newEnv(t, paramFile)
	csv := filepath.Join(e.dir, "lengths.csv")
	var b strings.Builder
	b.WriteString("num_prefill_tokens,num_decode_tokens\n")
	for i := 1; i <= 500; i++ {
		b.WriteString("17,3\n")
	}
	mustWrite(t, csv, b.String())
	// A file changed within the last second is not trusted by signature
	// (its change could share the clock tick of the hash).
	time.Sleep(1100 * time.Millisecond)
	o := watchOpens(t, csv)
	e.mustRun()
	// A gsim that has no digest remembered hashes the file once.
	os.RemoveAll(filepath.Join(e.store, "cache"))
	o.take()

	if s := e.gsim("status", e.exp); s.code != 0 || strings.Count(s.stdout, "up-to-date") != 6 {
		t.Fatalf("status: %s", s)
	}
	if n := o.take(); n != 1 {
		t.Errorf("one status opened the param file %d times, want once", n)
	}
	for _, args := range [][]string{{"status", e.exp}, {"run", e.exp}, {"run", e.exp, "--dry-run"}} {
		if s := e.gsim(args...); s.code != 0 {
			t.Fatalf("%v: %s", args, s)
		}
		if n := o.take(); n != 0 {
			t.Errorf("gsim %s opened the unchanged param file %d times, want 0", args[0], n)
		}
	}
	// Where there is no store, status and a dry run remember nothing, so
	// they make no store.
	none := filepath.Join(e.dir, "no-store")
	for _, args := range [][]string{{"status", e.exp, "--store", none}, {"run", e.exp, "--dry-run", "--store", none}} {
		if s := e.gsim(args...); s.code != 0 {
			t.Fatalf("%v: %s", args, s)
		}
		if _, err := os.Stat(none); !os.IsNotExist(err) {
			t.Fatalf("gsim %v made %s", args[:2], none)
		}
	}
	f, _ := os.OpenFile(csv, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("18,3\n")
	f.Close()
	o.take()
	s := e.gsim("status", e.exp)
	if !strings.Contains(s.stdout, "file:lengths.csv changed") {
		t.Errorf("status after the param file changed: %s", s)
	}
	if n := o.take(); n < 1 {
		t.Error("a changed param file was not rehashed")
	}
}
