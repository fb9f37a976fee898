package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// equalRuns compares two embedded simulations whose latencies are equal to
// within a float step (every request of this workload gets the same TTFT in
// both schedulers): the CDF axis over such a range once never finished
// its tick loop and gsim died out of memory.
const equalRuns = `name: equal
stages:
  workload:
    uses: workload
    with:
      model: Qwen/Qwen3-0.6B
      seed: 0
      num_requests: 5
      arrival: {process: constant, rate: 0.5}
      prefill: {dist: fixed, value: 8}
      decode: {dist: zipf, s: 3, min: 8, max: 2048}
  profile:
    uses: profile
    with: {source: recorded, path: PROFILE, hardware: h100}
  hf:
    uses: sim
    needs: [workload, profile]
    with: {engine: embedded, scheduler: hf-cb, predictor: vidur-profile, hardware: h100}
  sarathi:
    uses: sim
    needs: [workload, profile]
    with: {engine: embedded, scheduler: sarathi, predictor: vidur-profile, hardware: h100}
  compare:
    uses: compare
    needs: [workload, hf, sarathi]
    with: {reference: hf, workload: workload, candidates: [sarathi]}
`

func TestCompareOfEqualRunsFinishes(t *testing.T) {
	profile, err := filepath.Abs("../../testdata/profile/h100")
	if err != nil {
		t.Fatal(err)
	}
	stages, _ := filepath.Abs("../../stages")
	e := newEnv(t, strings.Replace(equalRuns, "PROFILE", profile, 1))
	// A hang allocates without bound: cap gsim's memory so it fails alone,
	// and its time so the test reports instead of waiting for go test's
	// own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", `ulimit -v 4194304; exec "$0" "$@"`, gsimBin, "run", e.exp)
	c.Dir = e.dir
	c.Env = append(e.cmd().Env, "GSIM_STAGES_DIR="+stages)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("gsim run: %v\n%s", err, tail(string(out), 40))
	}
	for _, f := range []string{"ttft", "itl", "tpot", "e2e"} {
		p := filepath.Join(e.store, "runs", "equal", "compare", "figs", f+"_cdf.png")
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("figure %s: %v", p, err)
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
