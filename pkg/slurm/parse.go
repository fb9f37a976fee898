package slurm

import (
	"fmt"
	"strconv"
	"strings"
)

// JobState is what Slurm says about one job.
type JobState struct {
	ID string
	// State is Slurm's state word (PENDING, RUNNING, COMPLETED, FAILED,
	// TIMEOUT, ...), without sacct's " by UID" suffix.
	State string
	// Reason is why a job pends or ended (squeue's %r), if known.
	Reason string
	// ExitCode and Signal are the batch script's, when known (sacct, or the
	// exit file the job script writes); -1 when unknown.
	ExitCode, Signal int
	Node             string
}

// Terminal states: the job will not run again by itself.
var terminal = map[string]bool{
	"COMPLETED": true, "FAILED": true, "CANCELLED": true, "TIMEOUT": true, "OUT_OF_MEMORY": true,
	"NODE_FAIL": true, "PREEMPTED": true, "BOOT_FAIL": true, "DEADLINE": true, "REVOKED": true,
	"SPECIAL_EXIT": true,
	// Not Slurm's: the job left the queue and no record says how it ended.
	Vanished: true,
}

// Vanished is the state gsim gives a job that squeue no longer lists, that
// sacct does not know (or cannot be asked) and that left no exit file.
const Vanished = "VANISHED"

// Terminal tells whether the job has ended for good.
func (s JobState) Terminal() bool { return terminal[s.State] }

// Succeeded tells whether the job ended with exit code 0.
func (s JobState) Succeeded() bool { return s.State == "COMPLETED" && s.ExitCode <= 0 }

// Retryable tells whether the job ended through no fault of the stage, so
// that submitting it again may well succeed.
func (s JobState) Retryable() bool {
	switch s.State {
	case "PREEMPTED", "NODE_FAIL", "BOOT_FAIL":
		return true
	}
	return false
}

// Queued tells whether the job waits for resources (or is held).
func (s JobState) Queued() bool {
	switch s.State {
	case "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD", "CONFIGURING":
		return true
	}
	return false
}

// Describe says how a job ended in a user's words.
func (s JobState) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Slurm job %s ended %s", s.ID, s.State)
	if s.Node != "" && s.Node != "None assigned" && s.Node != "(null)" {
		fmt.Fprintf(&b, " on %s", s.Node)
	}
	switch s.State {
	case "FAILED":
		if s.ExitCode > 0 {
			fmt.Fprintf(&b, " with exit code %d", s.ExitCode)
		}
		if s.Signal > 0 {
			fmt.Fprintf(&b, " (signal %d)", s.Signal)
		}
	case "TIMEOUT":
		b.WriteString(": it reached its time limit; raise resources.time")
	case "OUT_OF_MEMORY":
		b.WriteString(": it used more memory than it asked for; raise resources.mem")
	case "CANCELLED":
		b.WriteString(": someone or something ran scancel on it")
	case "NODE_FAIL", "BOOT_FAIL":
		b.WriteString(": its node failed")
	case "PREEMPTED":
		b.WriteString(": a job of higher priority took its resources")
	case "DEADLINE":
		b.WriteString(": it could not finish before its deadline")
	case Vanished:
		b.WriteString(": it left the queue, and neither sacct nor an exit file says how it ended")
	}
	return b.String()
}

// parseSbatch reads `sbatch --parsable` output: "ID" or "ID;CLUSTER".
func parseSbatch(out string) (string, error) {
	line := strings.TrimSpace(out)
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = strings.TrimSpace(line[i+1:])
	}
	id, _, _ := strings.Cut(line, ";")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil || id == "" {
		return "", fmt.Errorf("sbatch --parsable printed %q, not a job id", strings.TrimSpace(out))
	}
	return id, nil
}

// parseSqueue reads lines in squeueFormat.
func parseSqueue(out string) map[string]JobState {
	m := map[string]JobState{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 2 || f[0] == "" {
			continue
		}
		st := JobState{ID: f[0], State: baseState(f[1]), ExitCode: -1, Signal: -1}
		if len(f) > 2 && f[2] != "None" {
			st.Reason = f[2]
		}
		if len(f) > 3 {
			st.Node = f[3]
		}
		if st.State == "COMPLETED" {
			st.ExitCode = 0
		}
		m[st.ID] = st
	}
	return m
}

// sacctFormat: raw id, state, exit code (CODE:SIGNAL), nodes.
const sacctFormat = "JobIDRaw,State,ExitCode,NodeList"

// parseSacct reads `sacct -n -X -P -o sacctFormat` lines. A job requeued or
// resubmitted under one id has several lines; the last is the latest.
func parseSacct(out string) map[string]JobState {
	m := map[string]JobState{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		st := JobState{ID: f[0], State: baseState(f[1]), ExitCode: -1, Signal: -1}
		if code, sig, ok := strings.Cut(f[2], ":"); ok {
			st.ExitCode, _ = strconv.Atoi(code)
			st.Signal, _ = strconv.Atoi(sig)
		}
		if len(f) > 3 {
			st.Node = f[3]
		}
		m[st.ID] = st
	}
	return m
}

// baseState drops sacct's " by UID" and squeue's "+" flags.
func baseState(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " +"); i >= 0 {
		s = s[:i]
	}
	return strings.ToUpper(s)
}
