package profile

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// TestRealRunnerWithoutGPU: the real stages/profile runner, run by a plain
// python3 without a GPU, refuses with the exit code real-bench uses for the
// same refusal, and the Go side says what to do.
func TestRealRunnerWithoutGPU(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if exec.Command(py, "-c", "import torch; assert torch.cuda.is_available()").Run() == nil {
		t.Skip("this machine has a CUDA GPU")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	t.Setenv("GSIM_STAGES_DIR", filepath.Join(root, "stages"))
	spec := &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: root, OutDir: t.TempDir(),
		Params: map[string]any{"python": py, "quick": true}}
	err = (Kind{}).Run(context.Background(), spec, stage.Env{})
	var ee *stage.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != stage.ExitNoCUDA {
		t.Fatalf("want exit %d (as real-bench without CUDA), got %v", stage.ExitNoCUDA, err)
	}
	for _, want := range []string{"profile needs a CUDA GPU", "source: recorded", "cannot import torch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestPreflight(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	t.Setenv("GSIM_STAGES_DIR", filepath.Join(root, "stages"))
	k := Kind{}
	if key := k.PreflightKey(map[string]any{"source": "recorded", "path": "x"}, root); key != "" {
		t.Errorf("a recorded profile needs nothing of the machine, got key %q", key)
	}
	dir := t.TempDir()
	py := filepath.Join(dir, "python")
	os.WriteFile(py, []byte("#!/bin/sh\necho '##pyprobe {\"version\": \"3.11.2\", \"modules\": {\"torch\": {\"ok\": false, \"error\": \"ModuleNotFoundError: No module named torch\"}}}'\n"), 0o755)
	t.Setenv("GSIM_PYTHON", py)
	if key := k.PreflightKey(map[string]any{}, root); key != "python:"+py {
		t.Errorf("key %q does not follow $GSIM_PYTHON", key)
	}
	err := k.Preflight(context.Background(), map[string]any{"hardware": "h100"}, root)
	for _, want := range []string{py + " (Python 3.11.2) cannot import torch", "source: recorded"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}
