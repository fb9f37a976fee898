// Package chaos is gsim's reliability suite: it kills gsim runs and cleans
// with SIGKILL at random moments, runs several gsim processes on one store,
// and feeds mutated experiment files and artifact files to the readers,
// then checks what gsim promises: nothing it trusts is corrupt, a killed
// run resumes, a key never runs twice at once, nothing panics or hangs, and
// nothing a killed attempt started is left running.
//
// `go test ./internal/chaos/...` runs a short form (CI); GSIM_CHAOS=long
// runs the long one (a few minutes); GSIM_CHAOS_SEED fixes the random
// choices, GSIM_CHAOS_REPORT names a JSON file for the figures,
// GSIM_CHAOS_BIN a gsim binary to test instead of one built from here. The figures
// of a long run are in docs/reliability.md.
package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

var gsimBin string

// long is the long form; seed makes a run repeatable.
var (
	long = os.Getenv("GSIM_CHAOS") == "long"
	seed = uint64(1)
)

// Figures are what the suite counts; every "bad" one must stay 0.
type Figures struct {
	Seed uint64 `json:"seed"`
	Long bool   `json:"long"`

	Runs            int `json:"runs"`              // gsim run processes started
	Kills           int `json:"kills"`             // of those, killed with SIGKILL mid-run
	Cleans          int `json:"cleans"`            // gsim clean processes started
	CleanKills      int `json:"clean_kills"`       // of those, killed with SIGKILL
	ConcurrentRuns  int `json:"concurrent_runs"`   // runs that shared a store with others at once
	ObjectsChecked  int `json:"objects_checked"`   // objects gsim trusts, rehashed and compared with what they must hold
	Resumes         int `json:"resumes"`           // runs after a kill that had to finish the work
	OrphansEnded    int `json:"orphans_ended"`     // processes of killed attempts a later run or clean ended
	MutatedYAML     int `json:"mutated_yaml"`      // mutated experiment files loaded
	YAMLAccepted    int `json:"yaml_accepted"`     // of those, accepted as a plan (the rest refused at a position)
	MutatedYAMLCLI  int `json:"mutated_yaml_cli"`  // of those, also through `gsim run --dry-run`
	MutatedArtifact int `json:"mutated_artifacts"` // mutated artifact files read

	CorruptTrusted int `json:"corrupt_trusted"` // bad: an object gsim trusts that is not what it must be
	FailedResumes  int `json:"failed_resumes"`  // bad: a run after a kill that did not finish correctly
	KeysRunTwice   int `json:"keys_run_twice"`  // bad: a key executed twice, or two at once
	OrphansLeft    int `json:"orphans_left"`    // bad: processes of killed attempts alive after a later run or clean
	Panics         int `json:"panics"`          // bad: a panic in gsim or a reader
	Hangs          int `json:"hangs"`           // bad: a command or reader past its deadline
	Unpositioned   int `json:"unpositioned"`    // bad: an experiment error without file:line:col
}

var (
	figMu sync.Mutex
	fig   Figures
)

func count(f func(*Figures)) {
	figMu.Lock()
	defer figMu.Unlock()
	f(&fig)
}

func TestMain(m *testing.M) {
	if s := os.Getenv("GSIM_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "GSIM_CHAOS_SEED:", err)
			os.Exit(2)
		}
		seed = v
	} else if long {
		seed = uint64(time.Now().UnixNano())
	}
	dir, err := os.MkdirTemp("", "gsim-chaos")
	if err != nil {
		panic(err)
	}
	gsimBin = filepath.Join(dir, "gsim")
	if b := os.Getenv("GSIM_CHAOS_BIN"); b != "" {
		// Another gsim binary under test (an older release, say).
		gsimBin = b
	} else {
		build := exec.Command("go", "build", "-o", gsimBin, "github.com/gsim-dev/gsim/cmd/gsim")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build gsim:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	fig.Seed, fig.Long = seed, long
	b, _ := json.MarshalIndent(fig, "", "  ")
	fmt.Printf("chaos figures (GSIM_CHAOS_SEED=%d):\n%s\n", seed, b)
	if p := os.Getenv("GSIM_CHAOS_REPORT"); p != "" {
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "GSIM_CHAOS_REPORT:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// rng is a test's own random source, derived from the seed and its name so
// tests do not depend on each other's order.
func rng(t *testing.T) *rand.Rand {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(t.Name()) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed, h))
}

// scale picks the short or the long figure.
func scale(short, longN int) int {
	if long {
		return longN
	}
	return short
}
