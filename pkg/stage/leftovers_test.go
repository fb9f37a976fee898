package stage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Whatever a command leaves running (in its process group, or tagged and
// outside it) is ended when the command exits, before gsim adopts the
// output: nothing may write into it afterwards.
func TestRunCommandEndsLeftovers(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	// The leftovers sleep far longer than RunCommand may take even on a
	// loaded machine, so "did not wait for them" needs no tight timing.
	script := `( sleep 4; echo late > late-group.txt ) &
setsid bash -c 'sleep 4; echo late > late-tagged.txt' < /dev/null > /dev/null 2>&1 &
echo early`
	start := time.Now()
	err := RunCommand(context.Background(), Command{Argv: []string{"bash", "-c", script}, Dir: dir},
		Env{Log: &log, Tag: "test#" + filepath.Base(dir)})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("RunCommand waited %v for what the command left running", d)
	}
	time.Sleep(time.Until(start.Add(5 * time.Second)))
	for _, f := range []string{"late-group.txt", "late-tagged.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("a leftover wrote %s after the command returned", f)
		}
	}
	if !strings.Contains(log.String(), "early") || !strings.Contains(log.String(), "ended the processes the command left running") {
		t.Errorf("log:\n%s", log.String())
	}
}
