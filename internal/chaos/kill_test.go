package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/store"
)

// pipeline: per cell a generator writing several files in steps (and a
// background child that outlives a killed gsim), a copier, and a fan-in.
// Every output is a function of CELL and VERSION, so the suite knows what
// each object must hold. Each execution records its key in $TRACE (one
// line per start and end, O_APPEND), which tells keys run twice apart.
const pipeline = `name: chaos
matrix:
  cell: [1, 2, 3, 4]
stages:
  gen:
    uses: shell
    with:
      run: |
        k=$(basename "$GSIM_OUT"); k=${k%%-*}
        echo "start $k" >> "$TRACE"
        sleep 30 & echo "$!" >> "$PIDS"
        for i in 1 2 3 4 5 6; do echo "gen $CELL $VERSION $i" >> out.txt; sleep 0.01; done
        head -c 200000 /dev/zero | tr '\0' "$CELL" > big.bin
        mkdir -p sub; for i in $(seq 1 20); do echo "$CELL $i" > "sub/f$i.txt"; done
        echo "end $k" >> "$TRACE"
      env: {CELL: "${{ matrix.cell }}", VERSION: "@V@"}
      outputs: [out.txt, big.bin, sub/f20.txt]
  copy:
    uses: shell
    needs: [gen]
    with:
      run: |
        k=$(basename "$GSIM_OUT"); k=${k%%-*}
        echo "start $k" >> "$TRACE"
        sleep 0.0$((RANDOM % 5))
        cat "$GSIM_INPUT_GEN/out.txt" > out.txt
        echo "copy $VERSION" >> out.txt
        echo "end $k" >> "$TRACE"
      env: {VERSION: "@V@"}
      outputs: [out.txt]
  fan:
    uses: shell
    needs: [{stage: copy, all: true}]
    with:
      run: |
        k=$(basename "$GSIM_OUT"); k=${k%%-*}
        echo "start $k" >> "$TRACE"
        while read -r d; do cat "$d/out.txt"; done <<< "$GSIM_INPUTS_COPY" > out.txt
        echo "end $k" >> "$TRACE"
      outputs: [out.txt]
`

// expected is what each output must hold, by stage, for a cell and version.
func expectedGen(cell, version string) map[string]string {
	var out strings.Builder
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&out, "gen %s %s %d\n", cell, version, i)
	}
	files := map[string]string{"out.txt": out.String(), "big.bin": strings.Repeat(cell, 200000)}
	for i := 1; i <= 20; i++ {
		files[fmt.Sprintf("sub/f%d.txt", i)] = fmt.Sprintf("%s %d\n", cell, i)
	}
	return files
}

func expectedCopy(cell, version string) string {
	return expectedGen(cell, version)["out.txt"] + "copy " + version + "\n"
}

func expectedFan(version string) string {
	var b strings.Builder
	for _, c := range []string{"1", "2", "3", "4"} {
		b.WriteString(expectedCopy(c, version))
	}
	return b.String()
}

// world is one store and its experiment.
type world struct {
	t       *testing.T
	dir     string
	store   string
	exp     string
	trace   string
	pids    string
	version string
	// longest is the longest a run that did work took to its end: kill
	// moments are drawn within it, so that kills keep landing mid-run
	// however fast gsim and the machine are. Runs of one world may go
	// at once (TestConcurrentRuns): atomic.
	longest atomic.Int64
}

func newWorld(t *testing.T) *world {
	dir := t.TempDir()
	w := &world{t: t, dir: dir, store: filepath.Join(dir, "store"), exp: filepath.Join(dir, "chaos.yaml"),
		trace: filepath.Join(dir, "trace"), pids: filepath.Join(dir, "pids")}
	w.setVersion("v1")
	t.Cleanup(w.killLeftovers)
	return w
}

func (w *world) setVersion(v string) {
	w.version = v
	if err := os.WriteFile(w.exp, []byte(strings.ReplaceAll(pipeline, "@V@", v)), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, gsimBin, args...)
	c.Dir = w.dir
	c.Env = append(os.Environ(), "GSIM_STORE="+w.store, "TRACE="+w.trace, "PIDS="+w.pids,
		"GSIM_SLOT_DIR="+filepath.Join(w.dir, "slots"))
	c.WaitDelay = time.Second
	return c
}

type outcome struct {
	code           int
	stdout, stderr string
	hung           bool
}

// gsim runs gsim to its end (or deadline, which counts as a hang).
func (w *world) gsim(deadline time.Duration, args ...string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	c := w.cmd(ctx, args...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	start := time.Now()
	err := c.Run()
	w.ran(args, time.Since(start))
	o := outcome{stdout: so.String(), stderr: se.String(), hung: ctx.Err() != nil}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		o.code = ee.ExitCode()
	} else if err != nil && !o.hung {
		w.t.Fatal(err)
	}
	w.note(o, args)
	if m := endedRE.FindAllStringSubmatch(o.stdout+o.stderr, -1); m != nil {
		for _, g := range m {
			n, _ := strconv.Atoi(g[1])
			count(func(f *Figures) { f.OrphansEnded += n })
		}
	}
	return o
}

var endedRE = regexp.MustCompile(`ended (\d+) process\(es\) left running by killed gsim runs`)

// ran keeps the longest run that ended by itself.
func (w *world) ran(args []string, d time.Duration) {
	if len(args) == 0 || args[0] != "run" {
		return
	}
	for {
		old := w.longest.Load()
		if int64(d) <= old || w.longest.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

// killMoment draws when to kill a run: within the longest run seen (at
// most limit, and limit until one was seen).
func (w *world) killMoment(r *rand.Rand, limit time.Duration) time.Duration {
	if l := time.Duration(w.longest.Load()); l > 0 {
		limit = min(limit, l)
	}
	return jitter(r, limit)
}

// note counts panics and hangs of a finished command.
func (w *world) note(o outcome, args []string) {
	if o.hung {
		count(func(f *Figures) { f.Hangs++ })
		w.t.Errorf("gsim %v hung", args)
	}
	if strings.Contains(o.stderr, "panic:") || strings.Contains(o.stderr, "fatal error:") {
		count(func(f *Figures) { f.Panics++ })
		w.t.Errorf("gsim %v panicked:\n%s", args, o.stderr)
	}
}

// killed starts gsim and kills it with SIGKILL after d (if it is still
// running then).
func (w *world) killed(d time.Duration, args ...string) bool {
	c := w.cmd(context.Background(), args...)
	var se bytes.Buffer
	c.Stderr = &se
	if err := c.Start(); err != nil {
		w.t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
		w.ran(args, time.Since(start))
		w.note(outcome{stderr: se.String()}, args)
		return false
	case <-time.After(d):
		c.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// checkObjects rehashes every object gsim would trust and compares what it
// holds with what the stage must have written.
func (w *world) checkObjects() {
	st, err := store.OpenExisting(w.store)
	if err != nil {
		return // no store yet: the kill came before it existed
	}
	objs, _ := filepath.Glob(filepath.Join(w.store, "objects", "*"))
	for _, o := range objs {
		key := filepath.Base(o)
		if !st.Check(key).Complete {
			continue // not trusted: a run redoes it
		}
		count(func(f *Figures) { f.ObjectsChecked++ })
		bad := func(why string) {
			count(func(f *Figures) { f.CorruptTrusted++ })
			w.t.Errorf("object %s is trusted but %s", key, why)
		}
		if probs, err := st.Verify(key); err != nil || len(probs) > 0 {
			bad(fmt.Sprintf("does not verify: %v %v", probs, err))
			continue
		}
		m, err := store.ReadManifest(o)
		if err != nil {
			bad(err.Error())
			continue
		}
		env, _ := m.Params["env"].(map[string]any)
		cell, version := fmt.Sprint(env["CELL"]), fmt.Sprint(env["VERSION"])
		want := map[string]string{}
		switch {
		case strings.HasPrefix(m.Instance, "gen"):
			want = expectedGen(cell, version)
		case strings.HasPrefix(m.Instance, "copy"):
			want["out.txt"] = expectedCopy(strings.TrimSuffix(strings.TrimPrefix(m.Instance, "copy[cell="), "]"), version)
		case m.Instance == "fan":
			// The fan-in's version is its inputs'.
			b, _ := os.ReadFile(filepath.Join(o, "out.txt"))
			v := "v1"
			if i := strings.Index(string(b), "copy "); i >= 0 {
				v = strings.TrimSpace(strings.SplitN(string(b)[i+5:], "\n", 2)[0])
			}
			want["out.txt"] = expectedFan(v)
		}
		for name, body := range want {
			b, err := os.ReadFile(filepath.Join(o, name))
			if err != nil || string(b) != body {
				bad(fmt.Sprintf("%s holds %d bytes that are not what %s writes", name, len(b), m.Instance))
			}
		}
	}
}

// checkFinished asserts a run that was let finish left every output right.
func (w *world) checkFinished(o outcome) bool {
	if o.code != 0 {
		w.t.Errorf("run after kills: exit %d\n%s", o.code, o.stderr)
		return false
	}
	b, err := os.ReadFile(filepath.Join(w.store, "runs", "chaos", "fan", "out.txt"))
	if err != nil || string(b) != expectedFan(w.version) {
		w.t.Errorf("fan output after the run: %v\n%s", err, b)
		return false
	}
	return true
}

// checkTrace finds keys that ran at once in two processes or, in a store
// no run was killed in, more than once.
func (w *world) checkTrace() {
	b, _ := os.ReadFile(w.trace)
	running := map[string]int{}
	starts := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "start":
			running[f[1]]++
			starts[f[1]]++
			if running[f[1]] > 1 {
				count(func(f *Figures) { f.KeysRunTwice++ })
				w.t.Errorf("key %s ran in two processes at once", f[1])
			}
		case "end":
			running[f[1]]--
		}
	}
	for k, n := range starts {
		if n > 1 {
			count(func(f *Figures) { f.KeysRunTwice++ })
			w.t.Errorf("key %s ran %d times", k, n)
		}
	}
}

// checkOrphans: after a finished run or clean, no process a stage started
// may be alive.
func (w *world) checkOrphans() {
	b, _ := os.ReadFile(w.pids)
	for _, l := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(l)
		if err != nil || !ours(pid, w.store) {
			continue
		}
		count(func(f *Figures) { f.OrphansLeft++ })
		w.t.Errorf("process %d of a killed attempt still runs", pid)
	}
}

// ours tells whether pid is alive and carries a stage tag of this store
// (so a reused pid is not taken for a leftover).
func ours(pid int, root string) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil || strings.Contains(string(st), ") Z ") {
		return false
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	real, _ := filepath.EvalSymlinks(root)
	return bytes.Contains(env, []byte("GSIM_STAGE_TAG="+real+"#"))
}

// killLeftovers ends whatever the test's stages left, pass or fail.
func (w *world) killLeftovers() {
	b, _ := os.ReadFile(w.pids)
	for _, l := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(l); err == nil && ours(pid, w.store) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func jitter(r *rand.Rand, max time.Duration) time.Duration {
	return time.Duration(r.Int64N(int64(max)))
}

// Kill gsim runs at random moments, sometimes after changing the
// experiment (so a killed attempt's key is never run again), check every
// object it trusts after each kill, and check that the next run finishes
// the work, correctly, ending every leftover process.
func TestKillDuringRuns(t *testing.T) {
	r := rng(t)
	w := newWorld(t)
	rounds := scale(4, 25)
	for i := 0; i < rounds; i++ {
		if r.IntN(3) == 0 {
			w.setVersion(fmt.Sprintf("v%d", 1+r.IntN(3)))
		}
		kills := 1 + r.IntN(3)
		finished := false
		for k := 0; k < kills; k++ {
			count(func(f *Figures) { f.Runs++ })
			args := []string{"run", w.exp, "-j", strconv.Itoa(1 + r.IntN(4))}
			// A run after one that finished would find nothing to do:
			// give it work, or the kill would find it done.
			if finished || r.IntN(4) == 0 {
				args = append(args, "--force", "gen")
			}
			finished = !w.killed(w.killMoment(r, 1500*time.Millisecond), args...)
			if !finished {
				count(func(f *Figures) { f.Kills++ })
			}
			w.checkObjects()
		}
		count(func(f *Figures) { f.Runs++; f.Resumes++ })
		o := w.gsim(2*time.Minute, "run", w.exp)
		if !w.checkFinished(o) {
			count(func(f *Figures) { f.FailedResumes++ })
		}
		w.checkObjects()
		w.checkOrphans()
		if s := w.gsim(time.Minute, "status", w.exp, "--verify"); s.code != 0 {
			t.Errorf("status --verify after a finished run: exit %d\n%s%s", s.code, s.stdout, s.stderr)
		}
	}
}

// Kill gsim clean at random moments on a store full of things to remove
// (old versions' objects, failed and killed attempts): what is left must be
// a store a run trusts only where it should, and finishes from.
func TestKillDuringClean(t *testing.T) {
	r := rng(t)
	w := newWorld(t)
	rounds := scale(2, 12)
	for i := 0; i < rounds; i++ {
		// Garbage: every version's objects, then a killed attempt.
		for _, v := range []string{"v1", "v2", "v3"} {
			w.setVersion(v)
			count(func(f *Figures) { f.Runs++ })
			w.gsim(2*time.Minute, "run", w.exp)
		}
		w.setVersion(fmt.Sprintf("v%d", 1+r.IntN(3)))
		count(func(f *Figures) { f.Runs++ })
		if w.killed(jitter(r, 300*time.Millisecond), "run", w.exp, "--force", "all") {
			count(func(f *Figures) { f.Kills++ })
		}
		cleans := 1 + r.IntN(3)
		for k := 0; k < cleans; k++ {
			count(func(f *Figures) { f.Cleans++ })
			if w.killed(jitter(r, 60*time.Millisecond), "clean") {
				count(func(f *Figures) { f.CleanKills++ })
			}
			w.checkObjects()
		}
		count(func(f *Figures) { f.Cleans++ })
		if c := w.gsim(time.Minute, "clean"); c.code != 0 {
			t.Errorf("clean after killed cleans: exit %d\n%s", c.code, c.stderr)
		}
		w.checkOrphans()
		count(func(f *Figures) { f.Runs++; f.Resumes++ })
		if !w.checkFinished(w.gsim(2*time.Minute, "run", w.exp)) {
			count(func(f *Figures) { f.FailedResumes++ })
		}
		w.checkObjects()
	}
}

// Several gsim runs at once on one store, some of a second experiment that
// shares every stage (so the same keys): each key runs exactly once, all
// finish, and every output is right.
func TestConcurrentRuns(t *testing.T) {
	r := rng(t)
	rounds := scale(1, 8)
	for i := 0; i < rounds; i++ {
		w := newWorld(t)
		other := filepath.Join(w.dir, "twin.yaml")
		os.WriteFile(other, []byte(strings.Replace(strings.ReplaceAll(pipeline, "@V@", "v1"), "name: chaos", "name: twin", 1)), 0o644)
		n := 2 + r.IntN(scale(2, 4))
		outs := make(chan outcome, n)
		for k := 0; k < n; k++ {
			exp := w.exp
			if k%2 == 1 {
				exp = other
			}
			j := strconv.Itoa(1 + r.IntN(4))
			go func() { outs <- w.gsim(3*time.Minute, "run", exp, "-j", j) }()
		}
		for k := 0; k < n; k++ {
			o := <-outs
			count(func(f *Figures) { f.Runs++; f.ConcurrentRuns++ })
			if o.code != 0 {
				t.Errorf("concurrent run: exit %d\n%s", o.code, o.stderr)
			}
		}
		w.checkFinished(outcome{})
		w.checkTrace()
		w.checkObjects()
	}
}
