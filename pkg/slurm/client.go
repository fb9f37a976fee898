// Package slurm runs gsim's stages as Slurm jobs: a Launcher for the
// executor that submits `gsim stage exec` with sbatch, follows every job it
// submitted with one squeue (or sacct) call per poll interval, cancels them
// all with one scancel when the run is interrupted, and re-attaches to the
// jobs of a gsim that was killed, through the store's job records.
//
// Only the Slurm client commands are used (sbatch, squeue, sacct, scancel),
// as a user on a login node has them; nothing talks to slurmctld directly.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner runs one Slurm client command and returns its standard output. The
// error of a command that ran and failed holds its standard error.
type Runner interface {
	Run(ctx context.Context, name string, args []string, stdin string) (string, error)
}

// Exec runs the real commands from $PATH.
type Exec struct{}

// Run starts the command in its own process group, so a Ctrl-C at the
// terminal reaches gsim (which then cancels its jobs) but not an sbatch in
// flight, whose job would otherwise be submitted or not at random.
func (Exec) Run(ctx context.Context, name string, args []string, stdin string) (string, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Stdin = strings.NewReader(stdin)
	c.Env = environ()
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil {
		var ee *exec.ExitError
		msg := strings.TrimSpace(errb.String())
		if errors.As(err, &ee) && msg != "" {
			return out.String(), &CommandError{Name: name, Args: args, Stderr: msg}
		}
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("%s not found in $PATH: the Slurm executor runs gsim where the Slurm client commands (sbatch, squeue, scancel, sacct) are, such as a login node", name)
		}
		return out.String(), fmt.Errorf("%s: %w", name, err)
	}
	return out.String(), nil
}

// environ is gsim's environment for the jobs (sbatch exports it), less the
// tag that marks processes of one local attempt: a job carrying it would be
// taken for a leftover and killed by the next local attempt at its key.
func environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GSIM_STAGE_TAG=") {
			out = append(out, kv)
		}
	}
	return out
}

// CommandError is a Slurm command that ran and failed.
type CommandError struct {
	Name   string
	Args   []string
	Stderr string
}

func (e *CommandError) Error() string { return e.Name + ": " + e.Stderr }

// Client issues Slurm commands and counts them, so a run can say how much
// it asked of the controller.
type Client struct {
	r Runner
	// Timeout bounds one command (slurmctld can be slow to answer when busy).
	Timeout time.Duration
	mu      sync.Mutex
	counts  map[string]int
	// submitting lets one sbatch run at a time: a sweep submits hundreds
	// of jobs at once, and the controller (and this machine) serve them
	// faster one by one than as a burst of processes.
	submitting sync.Mutex
}

// NewClient wraps r (Exec{} for the real commands).
func NewClient(r Runner) *Client {
	return &Client{r: r, Timeout: 2 * time.Minute, counts: map[string]int{}}
}

func (c *Client) run(ctx context.Context, name string, args []string, stdin string) (string, error) {
	c.mu.Lock()
	c.counts[name]++
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	return c.r.Run(ctx, name, args, stdin)
}

// Counts returns how many times each command ran.
func (c *Client) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// CountsText renders Counts as "sbatch 3, squeue 10, sacct 0, scancel 0".
func (c *Client) CountsText() string {
	n := c.Counts()
	names := []string{"sbatch", "squeue", "sacct", "scancel"}
	for k := range n {
		if !contains(names, k) {
			names = append(names, k)
		}
	}
	sort.Strings(names[4:])
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, n[k])
	}
	return strings.Join(parts, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Transient tells whether a command failed for a reason that passes (a
// busy or restarting controller, a timeout) rather than because of the
// request.
func Transient(err error) bool {
	var ce *CommandError
	if !errors.As(err, &ce) {
		return err != nil
	}
	s := strings.ToLower(ce.Stderr)
	for _, w := range []string{"socket timed out", "resource temporarily unavailable", "unable to contact slurm controller",
		"connection refused", "slurm_persist_conn", "try again", "communication connection failure"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// Submit runs `sbatch --parsable ARGS` once, with script on its standard
// input, and returns the job id. The context does not interrupt an sbatch
// in flight: its job would be submitted or not at random.
func (c *Client) Submit(ctx context.Context, args []string, script string) (string, error) {
	c.submitting.Lock()
	defer c.submitting.Unlock()
	out, err := c.run(context.WithoutCancel(ctx), "sbatch", append([]string{"--parsable"}, args...), script)
	if err != nil {
		return "", err
	}
	return parseSbatch(out)
}

// squeueFormat: id, state, reason, nodes; '|' never occurs in them.
const squeueFormat = "%i|%T|%r|%N"

// Queue asks squeue, in one call, for the state of every job in ids,
// finished ones included (while slurmctld still remembers them, MinJobAge).
// A job missing from the answer has left the controller's memory.
func (c *Client) Queue(ctx context.Context, ids []string) (map[string]JobState, error) {
	if len(ids) == 0 {
		return map[string]JobState{}, nil
	}
	out, err := c.run(ctx, "squeue", []string{"-h", "-t", "all", "-o", squeueFormat, "-j", strings.Join(ids, ",")}, "")
	if err != nil {
		// squeue refuses a lone id it no longer knows instead of listing nothing.
		var ce *CommandError
		if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Invalid job id") {
			return map[string]JobState{}, nil
		}
		return nil, err
	}
	return parseSqueue(out), nil
}

// ErrNoAccounting is sacct on a cluster without accounting (no slurmdbd).
var ErrNoAccounting = errors.New("Slurm accounting is not available (sacct: accounting storage is disabled)")

// Accounting asks sacct, in one call, how the jobs in ids ended.
func (c *Client) Accounting(ctx context.Context, ids []string) (map[string]JobState, error) {
	if len(ids) == 0 {
		return map[string]JobState{}, nil
	}
	out, err := c.run(ctx, "sacct", []string{"-n", "-X", "-P", "-o", sacctFormat, "-j", strings.Join(ids, ",")}, "")
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && strings.Contains(strings.ToLower(ce.Stderr), "accounting storage is disabled") {
			return nil, ErrNoAccounting
		}
		return nil, err
	}
	return parseSacct(out), nil
}

// Find looks a job up by its (unique) name, for a gsim killed between
// submitting a job and recording its id: squeue first, then sacct.
func (c *Client) Find(ctx context.Context, name string) (JobState, bool, error) {
	out, err := c.run(ctx, "squeue", []string{"-h", "-t", "all", "-o", squeueFormat, "--name", name}, "")
	if err != nil {
		return JobState{}, false, err
	}
	for _, st := range parseSqueue(out) {
		return st, true, nil
	}
	out, err = c.run(ctx, "sacct", []string{"-n", "-X", "-P", "-o", sacctFormat, "--name", name, "-S", "now-7days"}, "")
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && strings.Contains(strings.ToLower(ce.Stderr), "accounting storage is disabled") {
			return JobState{}, false, nil
		}
		return JobState{}, false, err
	}
	for _, st := range parseSacct(out) {
		return st, true, nil
	}
	return JobState{}, false, nil
}

// Cancel cancels every job in ids with one scancel.
func (c *Client) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := c.run(ctx, "scancel", ids, "")
	return err
}
