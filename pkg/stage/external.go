package stage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gsim-dev/gsim/pkg/gpus"
)

// ProgressPrefix starts a line an external runner prints to report progress:
// "##gsim progress <done> <total> [message]". Other lines are plain log.
const ProgressPrefix = "##gsim progress "

// SpecFile is the name of the spec an external runner receives.
const SpecFile = "spec.json"

// WriteSpec writes spec as JSON to path.
func WriteSpec(path string, spec *Spec) error {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadSpec reads a spec written by WriteSpec.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: not a stage spec: %w", path, err)
	}
	if s.SchemaVersion != SpecVersion {
		return nil, fmt.Errorf("%s: spec schema_version %d, this gsim reads %d", path, s.SchemaVersion, SpecVersion)
	}
	return &s, nil
}

// ExitError is a failed external command: what ran, how it ended, and the
// end of its log, so the user sees why without opening files.
type ExitError struct {
	Command  []string
	ExitCode int
	LogTail  string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("command %s exited with code %d; last lines of its log:\n%s",
		quoteArgs(e.Command), e.ExitCode, e.LogTail)
}

func quoteArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			q[i] = strconv.Quote(a)
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// Command describes an external process.
type Command struct {
	Argv []string
	Dir  string
	Env  []string // added to the inherited environment
}

// RunCommand runs cmd, sending its stdout and stderr to env.Log line by line
// and turning progress lines into env.Progress calls. The process gets its own
// process group so a cancelled context kills the whole tree. However it ends,
// nothing it started outlives it: its process group and every process
// carrying env.Tag are killed before RunCommand returns, so no leftover can
// write into the output once gsim has adopted it.
func RunCommand(ctx context.Context, cmd Command, env Env) error {
	if len(cmd.Argv) == 0 {
		return errors.New("empty command")
	}
	c := exec.Command(cmd.Argv[0], cmd.Argv[1:]...)
	c.Dir = cmd.Dir
	c.Env = append(os.Environ(), cmd.Env...)
	if env.Tag != "" {
		c.Env = append(c.Env, TagVar+"="+env.Tag)
	}
	// The devices the attempt holds win over the inherited environment
	// and the command's own (exec keeps the last of duplicate names).
	_, userOrder := os.LookupEnv("CUDA_DEVICE_ORDER")
	c.Env = append(c.Env, gpus.Env(env.GPUs, userOrder)...)
	// Pdeathsig: if gsim itself is killed (SIGKILL leaves no chance to clean
	// up), the stage dies with it instead of holding the GPU while a rerun
	// starts. It fires when the starting thread exits, so pin the thread.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A pipe of our own rather than exec's copying goroutine: Wait then
	// returns when the command exits, even while something it left behind
	// still holds the pipe, so that leftover can be ended.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start %s: %w", quoteArgs(cmd.Argv), err)
	}
	c.Stdout = pw
	c.Stderr = pw
	tail := newTail(40)
	var log io.Writer = io.Discard
	if env.Log != nil {
		// The reader goroutine and this one both write to the log (gsim's
		// own notes about leftovers come before the reader has finished).
		log = &lockedWriter{w: env.Log}
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, ProgressPrefix) {
				if done, total, msg, ok := parseProgress(line); ok {
					env.Report(done, total, msg)
					continue
				}
			}
			tail.add(line)
			fmt.Fprintln(log, line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	runtime.LockOSThread()
	err = c.Start()
	runtime.UnlockOSThread()
	pw.Close()
	if err != nil {
		<-readDone
		pr.Close()
		return fmt.Errorf("start %s: %w", quoteArgs(cmd.Argv), err)
	}
	waitDone := make(chan error, 1)
	go func() { waitDone <- c.Wait() }()
	var cancelled bool
	select {
	case err = <-waitDone:
	case <-ctx.Done():
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		err = <-waitDone
		cancelled = true
	}
	if endLeftovers(c.Process.Pid, env.Tag) && !cancelled {
		fmt.Fprintln(log, "gsim: ended the processes the command left running")
	}
	// Whatever still holds the pipe now escaped both the group and the tag
	// (it cleared its environment): stop waiting for it.
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
		fmt.Fprintln(log, "gsim: a process the command started still holds its output open; it is no longer logged")
		pr.Close()
		<-readDone
	}
	pr.Close()
	if cancelled {
		return fmt.Errorf("%s: %w", quoteArgs(cmd.Argv), ctx.Err())
	}
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return &ExitError{Command: cmd.Argv, ExitCode: code, LogTail: tail.String()}
	}
	return nil
}

// endLeftovers kills what a finished command left: its process group
// (pgid, the command's pid) and every process tagged with tag, again while
// any is found (a leftover may fork while it is being ended). It reports
// whether there was anything to end.
func endLeftovers(pgid int, tag string) (ended bool) {
	for i := 0; i < 10; i++ {
		killed := syscall.Kill(-pgid, syscall.SIGKILL) == nil
		if KillTagged(tag) > 0 {
			killed = true
		}
		if !killed {
			break
		}
		ended = true
		time.Sleep(time.Millisecond)
	}
	return ended
}

func parseProgress(line string) (done, total float64, msg string, ok bool) {
	f := strings.SplitN(strings.TrimPrefix(line, ProgressPrefix), " ", 3)
	if len(f) < 2 {
		return 0, 0, "", false
	}
	d, err1 := strconv.ParseFloat(f[0], 64)
	t, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	if len(f) == 3 {
		msg = f[2]
	}
	return d, t, msg, true
}

type tailBuf struct {
	n     int
	lines []string
}

func newTail(n int) *tailBuf { return &tailBuf{n: n} }

func (t *tailBuf) add(s string) {
	t.lines = append(t.lines, s)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

func (t *tailBuf) String() string { return strings.Join(t.lines, "\n") }

// SharedRunnerDir is the folder of code the GPU runners share
// (stages/common): each puts it on its import path.
const SharedRunnerDir = "common"

// RunnerFingerprint digests runner name's folder, as "runner:<name>", and
// the shared folder, as "runner:common", so that editing either reruns the
// runner's stages. It returns the runner's folder too. A tree without the
// shared folder (a test double) is fingerprinted by the runner alone: a
// real runner there fails at its import, loudly.
func RunnerFingerprint(name, baseDir string) (string, map[string]string, error) {
	runner, err := RunnerDir(name, baseDir)
	if err != nil {
		return "", nil, err
	}
	d, err := DirDigest(runner)
	if err != nil {
		return "", nil, err
	}
	fp := map[string]string{"runner:" + name: d}
	if shared, err := RunnerDir(SharedRunnerDir, baseDir); err == nil {
		sd, err := DirDigest(shared)
		if err != nil {
			return "", nil, err
		}
		fp["runner:"+SharedRunnerDir] = sd
	}
	return runner, fp, nil
}

// RunnerDir finds the folder of an out-of-process runner (stages/<name>).
// $GSIM_STAGES_DIR wins; then stages/ beside the gsim binary's parent (an
// installed tree); then the nearest stages/ above baseDir (a checkout).
func RunnerDir(name, baseDir string) (string, error) {
	var tried []string
	if d := os.Getenv("GSIM_STAGES_DIR"); d != "" {
		p := filepath.Join(d, name)
		if isDir(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(filepath.Dir(exe)), "stages", name)
		if isDir(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	for d := baseDir; d != ""; {
		p := filepath.Join(d, "stages", name)
		if isDir(p) {
			return p, nil
		}
		tried = append(tried, p)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	// The folder beside the binary can also be one above the experiment.
	var uniq []string
	for _, p := range tried {
		if !slices.Contains(uniq, p) {
			uniq = append(uniq, p)
		}
	}
	return "", fmt.Errorf("runner folder stages/%s not found (looked in %s); set GSIM_STAGES_DIR to the repository's stages/ folder",
		name, strings.Join(uniq, ", "))
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// DirDigest hashes every regular file under dir (names and contents, sorted),
// skipping caches, so that an external runner's identity follows its code.
// Like FileDigest it rehashes only when a file changed (see UseDigestCache).
func DirDigest(dir string) (string, error) {
	var files []string
	var sigs []fileSig
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "__pycache__" || strings.HasPrefix(d.Name(), ".") && p != dir {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && !strings.HasSuffix(p, ".pyc") {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, p)
			sigs = append(sigs, sigOf(fi))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash runner %s: %w", dir, err)
	}
	sort.Sort(byPath{files, sigs})
	return digests.get("dir", dir, dirSig(dir, files, sigs), func() (string, error) {
		h := sha256.New()
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("hash runner %s: %w", dir, err)
			}
			rel, _ := filepath.Rel(dir, f)
			fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
			h.Write(b)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	})
}

// FileDigest is the sha256 of one file's content. A file is hashed once per
// process, and across processes (see UseDigestCache) again only when its
// size, mtime, ctime or inode changed.
func FileDigest(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return hashFile(path)
	}
	return digests.get("file", path, sigOf(fi), func() (string, error) { return hashFile(path) })
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ParamFileDigest is FileDigest of the file that param names (relative paths
// against baseDir). A missing file or a folder is a *ParamError that names
// the param, the path as written and as resolved, and what to do.
func ParamFileDigest(param, baseDir, path string) (string, error) {
	full := Resolve(baseDir, path)
	if err := checkParamPath(param, path, full, false); err != nil {
		return "", err
	}
	d, err := FileDigest(full)
	if err != nil {
		return "", &ParamError{Path: param, Msg: fmt.Sprintf("cannot read %s: %v", path, err)}
	}
	return d, nil
}

// ParamDirDigest is DirDigest of the folder that param names, with the
// errors of ParamFileDigest.
func ParamDirDigest(param, baseDir, path string) (string, error) {
	full := Resolve(baseDir, path)
	if err := checkParamPath(param, path, full, true); err != nil {
		return "", err
	}
	d, err := DirDigest(full)
	if err != nil {
		return "", &ParamError{Path: param, Msg: fmt.Sprintf("cannot read %s: %v", path, err)}
	}
	return d, nil
}

func checkParamPath(param, path, full string, wantDir bool) error {
	where := path
	if full != path {
		where += " (" + full + ")"
	}
	what, other := "file", "folder"
	if wantDir {
		what, other = other, what
	}
	fi, err := os.Stat(full)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &ParamError{Path: param, Msg: fmt.Sprintf("no such %s %s; check the path (relative paths start at the experiment file's folder)", what, where)}
	case err != nil:
		return &ParamError{Path: param, Msg: fmt.Sprintf("cannot read %s: %v", where, err)}
	case fi.IsDir() != wantDir:
		return &ParamError{Path: param, Msg: fmt.Sprintf("%s is a %s; name a %s", where, other, what)}
	}
	return nil
}

// Resolve makes a params path absolute against baseDir.
func Resolve(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(baseDir, p)
}

// lockedWriter serialises writes from several goroutines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
