package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// keyName is a name shaped like a store key (64 hex digits).
func keyName(c byte) string { return strings.Repeat(string(c), 64) }

func mustWrite(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// gsim clean must only ever remove what gsim made: in a folder that is no
// store it removes nothing, in an empty folder it makes no store, and it
// never follows a link out of the store.
func TestCleanTouchesOnlyAStore(t *testing.T) {
	t.Run("a folder that is not a store", func(t *testing.T) {
		e := newEnv(t, pipeline)
		other := filepath.Join(e.dir, "mine")
		keep := []string{
			filepath.Join(other, "objects", keyName('a'), "thesis.tex"),
			filepath.Join(other, "failed", keyName('b'), "notes.txt"),
			filepath.Join(other, "staging", keyName('c')+"-1-1", "data.csv"),
		}
		for _, p := range keep {
			mustWrite(t, p, "precious\n")
		}
		r := e.gsim("clean", "--store", other)
		if r.code == 0 || !strings.Contains(r.stderr, "not a gsim store") {
			t.Errorf("clean of a folder that is no store: %s", r)
		}
		for _, p := range keep {
			if !exists(p) {
				t.Errorf("clean removed %s from a folder that is no store", p)
			}
		}
		if exists(filepath.Join(other, "locks")) || exists(filepath.Join(other, "runs")) {
			t.Error("clean made store folders in a folder that is no store")
		}
	})

	t.Run("an empty folder", func(t *testing.T) {
		e := newEnv(t, pipeline)
		c := exec.Command(gsimBin, "clean")
		c.Dir = e.dir
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GSIM_STORE=") {
				c.Env = append(c.Env, kv)
			}
		}
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("clean with no store: %v\n%s", err, out)
		}
		if exists(filepath.Join(e.dir, "tmp")) || exists(filepath.Join(e.dir, "objects")) {
			t.Errorf("clean in an empty folder created a store:\n%s", out)
		}
	})

	t.Run("links out of the store", func(t *testing.T) {
		e := newEnv(t, pipeline)
		e.mustRun()
		outside := filepath.Join(e.dir, "outside")
		victim := []string{
			filepath.Join(outside, keyName('d')+"-1-1", "data.csv"),
			filepath.Join(outside, keyName('e'), "data.csv"),
		}
		for _, p := range victim {
			mustWrite(t, p, "precious\n")
		}
		for _, sub := range []string{"staging", "failed"} {
			p := filepath.Join(e.store, sub)
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, p); err != nil {
				t.Fatal(err)
			}
		}
		// A link in objects/ and in runs/ pointing out as well.
		if err := os.Symlink(filepath.Join(outside, keyName('e')), filepath.Join(e.store, "objects", keyName('e'))); err != nil {
			t.Fatal(err)
		}
		r := e.gsim("clean")
		for _, p := range victim {
			if !exists(p) {
				t.Errorf("clean followed a link out of the store and removed %s\n%s", p, r)
			}
		}
	})

	t.Run("entries that are not gsim's", func(t *testing.T) {
		e := newEnv(t, pipeline)
		e.mustRun()
		foreign := []string{
			filepath.Join(e.store, "objects", "README.txt"),
			filepath.Join(e.store, "failed", "my-notes", "a.txt"),
			filepath.Join(e.store, "staging", "keep-me", "a.txt"),
		}
		for _, p := range foreign {
			mustWrite(t, p, "mine\n")
		}
		dead := filepath.Join(e.store, "staging", keyName('f')+"-1-1")
		mustWrite(t, filepath.Join(dead, "x"), "x")
		r := e.gsim("clean")
		if r.code != 0 {
			t.Fatalf("clean: %s", r)
		}
		for _, p := range foreign {
			if !exists(p) {
				t.Errorf("clean removed %s, which gsim never makes", p)
			}
		}
		if exists(dead) {
			t.Errorf("clean kept a dead attempt's folder %s", dead)
		}
	})

	t.Run("a store made before the marker", func(t *testing.T) {
		e := newEnv(t, failing)
		e.gsim("run", e.exp)
		os.Remove(filepath.Join(e.store, "gsim-store.json"))
		r := e.gsim("clean")
		if r.code != 0 || !strings.Contains(r.stdout, "failed attempt") {
			t.Errorf("clean of a store with gsim's layout but no marker: %s", r)
		}
	})
}

// sealing: a stage that leaves a writer behind, in its process group and
// (setsid) outside it; both rewrite out.txt after the stage has exited.
const sealing = `name: s
stages:
  s:
    uses: shell
    with:
      run: |
        ( sleep 1; echo late >> out.txt ) >/dev/null 2>&1 &
        setsid bash -c 'sleep 1; echo later >> "$1"' _ "$PWD/out2.txt" >/dev/null 2>&1 < /dev/null &
        echo done > out.txt
        echo done > out2.txt
      outputs: [out.txt, out2.txt]
`

// Nothing a stage started may change its object after commit, and the
// object's files are read-only; clean, --force and --verify still work.
func TestCommittedObjectIsSealed(t *testing.T) {
	e := newEnv(t, sealing)
	e.mustRun()
	time.Sleep(1500 * time.Millisecond)
	dir := filepath.Join(e.store, "runs", "s", "s")
	for _, f := range []string{"out.txt", "out2.txt"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != "done\n" {
			t.Errorf("%s changed after commit: %q", f, b)
		}
	}
	if s := e.gsim("status", e.exp, "--verify"); s.code != 0 || lines(s.stdout)["s"] != "up-to-date" {
		t.Errorf("status after the stage's leftovers had time to write: %s", s)
	}
	for _, f := range []string{"out.txt", "out2.txt", "manifest.json", "stage.log"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o222 != 0 {
			t.Errorf("committed %s is writable: %v", f, st.Mode())
		}
	}
	if s := e.gsim("run", e.exp, "--force", "s"); s.code != 0 {
		t.Fatalf("--force over a read-only object: %s", s)
	}
	if s := e.gsim("run", e.exp, "--verify"); s.code != 0 {
		t.Fatalf("--verify of a read-only object: %s", s)
	}
	// Change the stage: the old object is no longer linked and clean removes it.
	e.write(strings.Replace(sealing, "echo done > out.txt", "echo done2 > out.txt", 1))
	e.mustRun()
	time.Sleep(1200 * time.Millisecond)
	r := e.gsim("clean")
	if r.code != 0 || !strings.Contains(r.stdout, "no runs/ link references it") {
		t.Errorf("clean of a read-only object: %s", r)
	}
	objs, _ := filepath.Glob(filepath.Join(e.store, "objects", "*"))
	if len(objs) != 1 {
		t.Errorf("objects after clean: %v", objs)
	}
}

// orphanAnyKey leaves a background child, then the experiment changes, so
// the killed attempt's key is never run again.
const orphanAnyKey = `name: o
stages:
  slow:
    uses: shell
    with:
      run: |
        if [ ! -e "$TESTDIR/go" ]; then
          sleep 300 &
          echo $! > "$TESTDIR/child.pid"
          wait
        fi
        echo VALUE > out.txt
      outputs: [out.txt]
`

// startOrphan runs the experiment, waits for its stage's child and kills
// gsim with SIGKILL; it returns the child, which outlives gsim.
func startOrphan(t *testing.T, e *env) int {
	t.Helper()
	c := e.cmd("run", e.exp)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(e.dir, "child.pid")
	var child int
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatal("stage never started its child")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	time.Sleep(100 * time.Millisecond)
	if !alive(child) {
		t.Skip("the child died with gsim on this system; nothing left over to end")
	}
	os.Remove(pidFile)
	return child
}

func waitDead(t *testing.T, pid int, after string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d left by a killed attempt still runs after %s", pid, after)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Any later run or clean on the store ends what a killed attempt left,
// whatever its key.
func TestOrphansOfAnyKeyEnded(t *testing.T) {
	t.Run("run with other params", func(t *testing.T) {
		e := newEnv(t, strings.Replace(orphanAnyKey, "VALUE", "v1", 1))
		child := startOrphan(t, e)
		e.write(strings.Replace(orphanAnyKey, "VALUE", "v2", 1))
		os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644)
		e.mustRun()
		waitDead(t, child, "a run of another key")
	})
	t.Run("clean", func(t *testing.T) {
		e := newEnv(t, strings.Replace(orphanAnyKey, "VALUE", "v1", 1))
		child := startOrphan(t, e)
		if r := e.gsim("clean"); r.code != 0 {
			t.Fatalf("clean: %s", r)
		}
		waitDead(t, child, "clean")
	})
}

// A committed object that lost bytes, gained bytes or a file is corrupt:
// status says so and exits 1, with and without --verify.
func TestStatusFindsDamagedObjects(t *testing.T) {
	damage := map[string]func(p string) error{
		"appended bytes": func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.WriteString("junk\n")
			return f.Close()
		},
		"flipped byte": func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[0] ^= 1
			return os.WriteFile(p, b, 0)
		},
		"removed file": os.Remove,
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, pipeline)
			e.mustRun()
			p := filepath.Join(e.store, "runs", "t", "w.rate@1", "w.txt")
			os.Chmod(p, 0o644)
			if err := f(p); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"status", e.exp, "--verify"}, {"status", e.exp}} {
				s := e.gsim(args...)
				if s.code != 1 || !strings.HasPrefix(lines(s.stdout)["w[rate=1]"], "corrupt (w.txt: ") {
					t.Errorf("gsim %v after %s: %s", args[2:], name, s)
				}
			}
			if r := e.mustRun(); !strings.Contains(r.stdout, "1 ran") {
				t.Errorf("run after damage: %s", r)
			}
			if s := e.gsim("status", e.exp, "--verify"); s.code != 0 {
				t.Errorf("status after the rerun: %s", s)
			}
		})
	}
}

// An output that is a symbolic link out of the stage's folder is refused,
// with how to copy it instead; nothing is adopted.
func TestOutputLinkOutOfTheStageRefused(t *testing.T) {
	e := newEnv(t, `name: l
stages:
  l:
    uses: shell
    with:
      run: ln -s "$TESTDIR/outside.txt" out.txt; ln -s ../../../etc/hostname rel.txt
      outputs: [out.txt]
`)
	mustWrite(t, filepath.Join(e.dir, "outside.txt"), "v1\n")
	r := e.gsim("run", e.exp)
	if r.code != 1 || !strings.Contains(r.stderr, "out.txt") || !strings.Contains(r.stderr, "cp -L") {
		t.Errorf("run with an output linking out of the stage: %s", r)
	}
	if objs, _ := filepath.Glob(filepath.Join(e.store, "objects", "*")); len(objs) != 0 {
		t.Errorf("adopted: %v", objs)
	}
}

// attempts: the first attempt fails with a diagnostic; the second fails
// without being able to write a log (its stage.log is on a full device).
const attempts = `name: a
stages:
  a:
    uses: shell
    with:
      run: |
        if [ ! -e "$TESTDIR/first" ]; then
          touch "$TESTDIR/first"
          echo "the first diagnostic" >&2
          exit 3
        fi
        rm stage.log && ln -s /dev/full stage.log
        echo "lost" >&2
        exit 4
      outputs: [out.txt]
`

// A later failed attempt that could write no log (a full disk) must not
// replace the earlier attempt's diagnostic with an empty stage.log.
func TestFailedAttemptWithoutLogKeepsEarlierDiagnostic(t *testing.T) {
	e := newEnv(t, attempts)
	if r := e.gsim("run", e.exp); r.code != 1 {
		t.Fatalf("first attempt: %s", r)
	}
	r := e.gsim("run", e.exp)
	if r.code != 1 {
		t.Fatalf("second attempt: %s", r)
	}
	logs, _ := filepath.Glob(filepath.Join(e.store, "failed", "*", "stage.log"))
	if len(logs) != 1 {
		t.Fatalf("failed logs: %v", logs)
	}
	// Read at most a little: an old gsim kept the link to /dev/full.
	if b := readHead(logs[0]); !strings.Contains(string(b), "the first diagnostic") {
		t.Errorf("the earlier diagnostic is lost; failed log now:\n%s\nrun: %s", b, r)
	}
	if !strings.Contains(r.stderr, "the first diagnostic") && !strings.Contains(r.stderr, logs[0]) {
		t.Errorf("the second failure does not point at the kept log: %s", r)
	}
}

func readHead(p string) []byte {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, b)
	return b[:n]
}

// The same on a real full disk: a small tmpfs in a private mount namespace
// (root only; elsewhere the test says why it skips).
func TestFullDiskKeepsEarlierDiagnostic(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs in a private mount namespace")
	}
	if err := exec.Command("unshare", "-m", "true").Run(); err != nil {
		t.Skipf("cannot make a private mount namespace here (unshare -m): %v", err)
	}
	e := newEnv(t, `name: a
stages:
  a:
    uses: shell
    with:
      run: |
        echo "the first diagnostic: $(cat "$TESTDIR/attempt")" >&2
        exit 3
      outputs: [out.txt]
`)
	disk := filepath.Join(e.dir, "disk")
	os.MkdirAll(disk, 0o755)
	script := `set -u
mount -t tmpfs -o size=1m tmpfs "$DISK" || exit 97
echo one > "$TESTDIR/attempt"
"$GSIM" run "$EXP" --store "$DISK/store" > /dev/null 2>&1
head -c 2000000 /dev/zero > "$DISK/filler" 2>/dev/null
echo two > "$TESTDIR/attempt"
"$GSIM" run "$EXP" --store "$DISK/store" 2> "$TESTDIR/second.err" > /dev/null
echo "second exit $?"
cat "$DISK"/store/failed/*/stage.log
`
	c := exec.Command("unshare", "-m", "sh", "-c", script)
	c.Env = append(os.Environ(), "DISK="+disk, "GSIM="+gsimBin, "EXP="+e.exp, "TESTDIR="+e.dir,
		"GSIM_SLOT_DIR="+filepath.Join(e.dir, "slots"))
	out, err := c.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 97 {
		t.Skipf("cannot mount a tmpfs here: %s", out)
	}
	second, _ := os.ReadFile(filepath.Join(e.dir, "second.err"))
	if !strings.Contains(string(out), "second exit 1") || !strings.Contains(string(out), "the first diagnostic: one") {
		t.Errorf("after a second attempt on a full disk the failed log is not the first attempt's:\n%s\nsecond run:\n%s", out, second)
	}
}
