package realbench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeInterpreter answers the probe as an interpreter with CPU-only torch
// would, and counts its runs.
func fakeInterpreter(t *testing.T, answer string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	py, count := filepath.Join(dir, "python"), filepath.Join(dir, "count")
	os.WriteFile(py, []byte("#!/bin/sh\necho x >> "+count+"\ncat <<'EOF'\n"+answer+"\nEOF\n"), 0o755)
	return py, count
}

func TestPreflight(t *testing.T) {
	root := repoRoot(t)
	t.Setenv("GSIM_STAGES_DIR", filepath.Join(root, "stages"))
	cpu, count := fakeInterpreter(t, `##pyprobe {"executable": "/opt/cpu/python", "version": "3.12.3", "modules": {"torch": {"ok": true}, "transformers": {"ok": true}, "transformers.generation.continuous_batching": {"ok": true}, "transformers.models.qwen3": {"ok": true}}, "cuda": {"available": false, "torch": "2.11.0+cpu"}}`)
	gpu, _ := fakeInterpreter(t, `##pyprobe {"executable": "/opt/gpu/python", "version": "3.12.3", "modules": {"torch": {"ok": true}, "transformers": {"ok": true}, "transformers.generation.continuous_batching": {"ok": true}, "transformers.models.qwen3": {"ok": true}}, "cuda": {"available": true, "devices": 1, "torch": "2.11.0"}}`)
	ctx := context.Background()
	k := Kind{}

	// $GSIM_PYTHON picks the interpreter, as it does for the run.
	t.Setenv("GSIM_PYTHON", cpu)
	params := map[string]any{"hardware": "h100"}
	if key := k.PreflightKey(params, root); key != "python:"+cpu {
		t.Errorf("key = %q, want the $GSIM_PYTHON interpreter", key)
	}
	err := k.Preflight(ctx, params, root)
	for _, want := range []string{"torch 2.11.0+cpu in " + cpu + " (/opt/cpu/python, Python 3.12.3) sees no CUDA GPU", "replay"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("cpu torch: %v lacks %q", err, want)
		}
	}
	// Profile (same interpreter) asks the same question: no second run.
	k.Preflight(ctx, map[string]any{"rate": 2}, root)
	if b, _ := os.ReadFile(count); strings.Count(string(b), "x") != 1 {
		t.Errorf("the interpreter was probed %d times", strings.Count(string(b), "x"))
	}
	// with.python wins over $GSIM_PYTHON.
	params["python"] = gpu
	if err := k.Preflight(ctx, params, root); err != nil {
		t.Errorf("gpu interpreter: %v", err)
	}

	// The real python3 of this machine, if it lacks torch.
	py, lerr := exec.LookPath("python3")
	if lerr != nil || exec.Command(py, "-c", "import torch").Run() == nil {
		return
	}
	err = k.Preflight(ctx, map[string]any{"python": py}, root)
	if err == nil || !strings.Contains(err.Error(), "cannot import torch (ModuleNotFoundError") {
		t.Errorf("python3 without torch: %v", err)
	}
}
