package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// orphaning: the stage leaves a background child, as a pipeline or a
// runner's worker would; gsim's death kills the stage's shell (PDEATHSIG)
// but not that child.
const orphaning = `name: o
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
        echo done > out.txt
      outputs: [out.txt]
`

func alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(st), ") Z ")
}

func TestRerunEndsProcessesLeftByKilledAttempt(t *testing.T) {
	e := newEnv(t, orphaning)
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
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	time.Sleep(100 * time.Millisecond)
	if !alive(child) {
		t.Skip("the child died with gsim on this system; nothing left over to end")
	}

	os.WriteFile(filepath.Join(e.dir, "go"), nil, 0o644)
	r := e.mustRun()
	deadline = time.Now().Add(5 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d left by the killed attempt still runs after the rerun", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(r.stderr, "ended 1 process(es) left running by killed gsim runs") {
		t.Errorf("the rerun does not say it ended leftovers:\n%s", r)
	}
}
