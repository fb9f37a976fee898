package slurm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// fakeSlurm answers the Slurm commands from a table, for unit tests of
// parsing and bookkeeping only: internal/slurmtest runs the same paths
// against a real cluster.
type fakeSlurm struct {
	mu    sync.Mutex
	calls []string // "squeue -h -t all ..." as issued
	next  int
	// ends[i] is the state submission i+1 ends in (COMPLETED by default).
	ends   []string
	jobs   map[string]*fakeJob
	forget map[string]bool // ids squeue no longer lists
	noAcct bool
	// lost is how many sbatch calls, from the first, submit the job but
	// lose the reply (a controller that timed out answering).
	lost int
}

type fakeJob struct {
	id, name, state string
}

func newFake(ends ...string) *fakeSlurm {
	return &fakeSlurm{ends: ends, jobs: map[string]*fakeJob{}, forget: map[string]bool{}, next: 100}
}

func (f *fakeSlurm) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, name+" ") || c == name {
			n++
		}
	}
	return n
}

func arg(args []string, prefix string) string {
	for i, a := range args {
		if strings.HasPrefix(a, prefix+"=") {
			return strings.TrimPrefix(a, prefix+"=")
		}
		if a == prefix && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (f *fakeSlurm) Run(_ context.Context, name string, args []string, stdin string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.TrimSpace(name+" "+strings.Join(args, " ")))
	switch name {
	case "sbatch":
		f.next++
		id := strconv.Itoa(f.next)
		end := "COMPLETED"
		if n := f.next - 101; n < len(f.ends) {
			end = f.ends[n]
		}
		f.jobs[id] = &fakeJob{id: id, name: arg(args, "--job-name"), state: end}
		if f.lost > 0 {
			f.lost--
			return "", &CommandError{Name: "sbatch", Stderr: "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"}
		}
		return id + "\n", nil
	case "squeue":
		var b strings.Builder
		ids := strings.Split(arg(args, "-j"), ",")
		if n := arg(args, "--name"); n != "" {
			ids = nil
			for id, j := range f.jobs {
				if j.name == n {
					ids = append(ids, id)
				}
			}
		}
		for _, id := range ids {
			if j := f.jobs[id]; j != nil && !f.forget[id] {
				fmt.Fprintf(&b, "%s|%s|None|node1\n", id, j.state)
			}
		}
		if len(ids) == 1 && b.Len() == 0 && arg(args, "--name") == "" {
			return "", &CommandError{Name: "squeue", Stderr: "slurm_load_jobs error: Invalid job id specified"}
		}
		return b.String(), nil
	case "sacct":
		if f.noAcct {
			return "", &CommandError{Name: "sacct", Stderr: "sacct: error: Slurm accounting storage is disabled"}
		}
		var b strings.Builder
		for _, id := range strings.Split(arg(args, "-j"), ",") {
			if j := f.jobs[id]; j != nil {
				code := "0:0"
				if j.state == "FAILED" {
					code = "2:0"
				}
				fmt.Fprintf(&b, "%s|%s|%s|node1\n", id, j.state, code)
			}
		}
		return b.String(), nil
	case "scancel":
		for _, id := range args {
			if j := f.jobs[id]; j != nil {
				j.state = "CANCELLED"
			}
		}
		return "", nil
	}
	return "", fmt.Errorf("fake: unknown command %s", name)
}
