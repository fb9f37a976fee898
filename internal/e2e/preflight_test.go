package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needsGPU is a small study on a machine without what its GPU and Vidur
// stages need: two real-bench cells, a GPU profile and a Vidur sim.
const needsGPU = `name: nogpu
matrix:
  rate: [1, 2]
stages:
  workload:
    uses: workload
    with:
      model: Qwen/Qwen3-0.6B
      num_requests: 4
      arrival: {process: poisson, rate: "${{ matrix.rate }}"}
      prefill: {dist: fixed, value: 8}
      decode: {dist: fixed, value: 8}
  real:
    uses: real-bench
    needs: [workload]
    with: {hardware: h100}
  profile:
    uses: profile
    with: {source: gpu, hardware: h100}
  vidur:
    uses: vidur
    needs: [workload, profile]
    with: {hardware: h100}
`

// TestPreflightBeforeAnyStage: gsim run says everything the planned stages
// lack at once and starts nothing, instead of starting each GPU stage to
// fail on its own.
func TestPreflightBeforeAnyStage(t *testing.T) {
	e := newEnv(t, needsGPU)
	stages, _ := filepath.Abs("../../stages")
	// An interpreter with CPU-only torch, as on a laptop: the answer the
	// preflight probe gets, whatever this machine has.
	py := filepath.Join(e.dir, "python")
	os.WriteFile(py, []byte(`#!/bin/sh
echo '##pyprobe {"executable": "/opt/cpu/python", "version": "3.12.3", "modules": {"torch": {"ok": true}, "transformers": {"ok": true}, "transformers.generation.continuous_batching": {"ok": true}, "transformers.models.qwen3": {"ok": true}}, "cuda": {"available": false, "torch": "2.11.0+cpu"}}'
`), 0o755)
	run := func(args ...string) result {
		c := exec.Command(gsimBin, append([]string{"run", e.exp}, args...)...)
		c.Dir = e.dir
		c.Env = append(e.cmd().Env, "GSIM_STAGES_DIR="+stages, "GSIM_PYTHON="+py, "GSIM_VIDUR=")
		var r result
		out, err := c.Output()
		r.stdout = string(out)
		if ee, ok := err.(*exec.ExitError); ok {
			r.code, r.stderr = ee.ExitCode(), string(ee.Stderr)
		}
		return r
	}
	r := run()
	if r.code != 2 {
		t.Fatalf("want exit 2: %s", r)
	}
	for _, want := range []string{
		"nothing was started",
		"real-bench (real[rate=1], real[rate=2]): torch 2.11.0+cpu in " + py,
		"profile (profile): torch 2.11.0+cpu in " + py,
		"vidur (vidur[rate=1], vidur[rate=2]): where is Vidur?",
		"--no-preflight",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr+r.stdout, "workload started") {
		t.Errorf("a stage started:\n%s", r)
	}
	if objs, _ := filepath.Glob(filepath.Join(e.store, "objects", "*")); len(objs) != 0 {
		t.Errorf("objects made: %v", objs)
	}
	// Only the CPU part: nothing to check, it runs.
	if r := run("--only", "workload"); r.code != 0 {
		t.Errorf("--only workload: %s", r)
	}
	// --no-preflight starts the stages, which fail on their own.
	if r := run("--no-preflight", "-k"); r.code != 1 || !strings.Contains(r.stderr, "stage real[rate=1] failed") {
		t.Errorf("--no-preflight: %s", r)
	}
}
