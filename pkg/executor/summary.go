package executor

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gsim-dev/gsim/pkg/progress"
)

// Outcome is what happened to one instance in a run.
type Outcome string

const (
	Ran           Outcome = "ran"
	UpToDateRun   Outcome = "up-to-date"
	Reused        Outcome = "reused" // another gsim (or an identical key) made it meanwhile
	FailedOutcome Outcome = "FAILED"
	Skipped       Outcome = "skipped"
	Cancelled     Outcome = "cancelled"
	NotRun        Outcome = "not-run"
)

// Entry is one instance's outcome.
type Entry struct {
	ID       string
	Key      string
	Outcome  Outcome
	Reason   string
	Duration time.Duration
	LogPath  string
	Err      error
}

// Summary is a run's per-instance record, in plan order.
type Summary struct {
	Entries []Entry
	Elapsed time.Duration
}

// Count returns how many instances had outcome o.
func (s *Summary) Count(o Outcome) int {
	n := 0
	for _, e := range s.Entries {
		if e.Outcome == o {
			n++
		}
	}
	return n
}

// Print writes the instances that did something (up-to-date ones are only
// counted, so a no-op run of a big sweep stays one line) and a total line:
// "summary: 2 ran, 10 up-to-date, 0 reused, 0 failed, 0 skipped in 1.2s".
func (s *Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range s.Entries {
		if e.Outcome == UpToDateRun {
			continue
		}
		var extra []string
		if e.Duration > 0 {
			extra = append(extra, progress.Duration(e.Duration))
		}
		if e.Reason != "" {
			extra = append(extra, e.Reason)
		}
		if e.LogPath != "" {
			extra = append(extra, "log: "+e.LogPath)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.Outcome, e.ID, strings.Join(extra, "  "))
	}
	tw.Flush()
	fmt.Fprintf(w, "summary: %d ran, %d up-to-date, %d reused, %d failed, %d skipped",
		s.Count(Ran), s.Count(UpToDateRun), s.Count(Reused), s.Count(FailedOutcome), s.Count(Skipped)+s.Count(NotRun)+s.Count(Cancelled))
	fmt.Fprintf(w, " in %s\n", progress.Duration(s.Elapsed))
}
