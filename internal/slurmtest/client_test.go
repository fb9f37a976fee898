package slurmtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/slurm"
)

// TestClientAgainstCluster: each command the launcher issues, and each way
// of reading an answer, against the real thing (pkg/slurm tests the same
// parsing on recorded answers).
func TestClientAgainstCluster(t *testing.T) {
	needCluster(t)
	ctx := context.Background()
	c := slurm.NewClient(slurm.Exec{})
	name := "gsim-clienttest-" + time.Now().Format("150405.000")
	ok, err := c.Submit(ctx, []string{"--job-name=" + name, "--output=/dev/null"}, "#!/bin/sh\nexit 0\n")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.Submit(ctx, []string{"--job-name=" + name + "-bad", "--output=/dev/null"}, "#!/bin/sh\nexit 3\n")
	if err != nil {
		t.Fatal(err)
	}
	long, err := c.Submit(ctx, []string{"--job-name=" + name + "-long", "--output=/dev/null"}, "#!/bin/sh\nsleep 600\n")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx, []string{long})
	var states map[string]slurm.JobState
	deadline := time.Now().Add(60 * time.Second)
	for {
		states, err = c.Queue(ctx, []string{ok, bad, long})
		if err != nil {
			t.Fatal(err)
		}
		if states[ok].Terminal() && states[bad].Terminal() && states[long].State == "RUNNING" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs did not get going: %+v", states)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !states[ok].Succeeded() || states[bad].State != "FAILED" || states[long].Node == "" {
		t.Errorf("squeue: %+v", states)
	}
	if st, found, err := c.Find(ctx, name+"-bad"); err != nil || !found || st.ID != bad {
		t.Errorf("find by name: %+v %v %v", st, found, err)
	}
	// squeue refuses a lone unknown id; the client reads that as "not listed".
	if got, err := c.Queue(ctx, []string{"999999999"}); err != nil || len(got) != 0 {
		t.Errorf("unknown id: %v %v", got, err)
	}
	if err := c.Cancel(ctx, []string{long}); err != nil {
		t.Fatal(err)
	}
	acct, err := c.Accounting(ctx, []string{ok, bad})
	if errors.Is(err, slurm.ErrNoAccounting) {
		t.Logf("this cluster has no accounting; sacct is not tested here")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	// slurmdbd records the ends a moment after slurmctld knows them.
	for deadline := time.Now().Add(30 * time.Second); !(acct[ok].Terminal() && acct[bad].Terminal()); {
		if time.Now().After(deadline) {
			t.Fatalf("sacct: %+v", acct)
		}
		time.Sleep(500 * time.Millisecond)
		acct, _ = c.Accounting(ctx, []string{ok, bad})
	}
	if !acct[ok].Succeeded() || acct[bad].State != "FAILED" || acct[bad].ExitCode != 3 {
		t.Errorf("sacct: %+v", acct)
	}
}
