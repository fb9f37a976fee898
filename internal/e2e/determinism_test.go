package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// simStudy is a small study on gsim's own kinds (no GPU, no Vidur): a
// workload swept over two rates, the recorded H100 profile, two embedded
// simulations, their comparison and the sweep report.
func simStudy(t *testing.T) string {
	t.Helper()
	prof, err := filepath.Abs("../../testdata/profile/h100")
	if err != nil {
		t.Fatal(err)
	}
	return `name: det
matrix:
  rate: [2, 4]
stages:
  workload:
    uses: workload
    with:
      model: Qwen/Qwen3-0.6B
      seed: 3
      num_requests: 30
      arrival: {process: poisson, rate: "${{ matrix.rate }}"}
      prefill: {dist: lognormal, mean: 200, std: 100, min: 16, max: 1024}
      decode: {dist: lognormal, mean: 30, std: 20, min: 4, max: 128}
  profile:
    uses: profile
    with: {source: recorded, path: ` + prof + `, hardware: h100}
  sim:
    uses: sim
    needs: [workload, profile]
    with: {scheduler: vllm, predictor: vidur-profile, block_size: 256, num_blocks: 512}
  sarathi:
    uses: sim
    needs: [workload, profile]
    with: {scheduler: sarathi, predictor: vidur-profile, block_size: 256, num_blocks: 512}
  compare:
    uses: compare
    needs: [workload, sim, sarathi]
    with: {reference: sim, workload: workload}
  report:
    uses: report
    needs: [{stage: compare, all: true}]
    with: {x: rate}
`
}

// outputDigests maps each instance in a store to its output digest.
func outputDigests(t *testing.T, store string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(store, "objects", "*", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Instance     string `json:"instance"`
			OutputDigest string `json:"output_digest"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[m.Instance] = m.OutputDigest
	}
	return out
}

func stagesEnv(e *env) {
	stages, _ := filepath.Abs("../../stages")
	e.extraEnv = append(e.extraEnv, "GSIM_STAGES_DIR="+stages)
}

// The same experiment run in two stores in different folders gives every
// stage instance the same output digest: nothing a stage writes depends on
// where the store is (compare.json once held absolute store paths) or when
// it ran (sim's run_meta.json once held wall-clock times).
func TestOutputsIdenticalAcrossStores(t *testing.T) {
	a, b := newEnv(t, simStudy(t)), newEnv(t, simStudy(t))
	stagesEnv(a)
	stagesEnv(b)
	a.mustRun()
	b.mustRun()
	da, db := outputDigests(t, a.store), outputDigests(t, b.store)
	if len(da) != 10 {
		t.Fatalf("store A holds %d objects, want 10: %v", len(da), da)
	}
	for inst, d := range da {
		if db[inst] != d {
			t.Errorf("%s: output digest %s in one store, %s in the other", inst, d, db[inst])
		}
	}
	cmp, err := os.ReadFile(filepath.Join(a.store, "runs", "det", "compare.rate@2", "compare.json")) // the link of compare[rate=2]
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmp), a.store) || strings.Contains(string(cmp), a.dir) {
		t.Errorf("compare.json names the store's folder %s", a.store)
	}
}

// Forcing the simulations reruns them, but they compute the same outputs,
// so nothing downstream of them reruns.
func TestForcedSimLeavesDownstreamUpToDate(t *testing.T) {
	e := newEnv(t, simStudy(t))
	stagesEnv(e)
	e.mustRun()
	before := outputDigests(t, e.store)
	r := e.mustRun("--force", "sim")
	ran, up, _, _, _ := summary(t, r)
	if ran != 2 || up != 8 {
		t.Errorf("--force sim: ran %d, up-to-date %d; want the 2 sim instances run and the other 8 up to date:\n%s", ran, up, r)
	}
	after := outputDigests(t, e.store)
	for inst, d := range before {
		if after[inst] != d {
			t.Errorf("%s: output digest changed from %s to %s", inst, d, after[inst])
		}
	}
}
