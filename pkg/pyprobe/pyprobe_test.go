package pyprobe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakePython writes an interpreter that answers with out (or sleeps when
// out is "sleep") and counts its runs in the returned file.
func fakePython(t *testing.T, out string) (py, count string) {
	t.Helper()
	dir := t.TempDir()
	py, count = filepath.Join(dir, "python"), filepath.Join(dir, "count")
	body := "#!/bin/sh\necho x >> " + count + "\n"
	if out == "sleep" {
		body += "exec sleep 30\n"
	} else {
		body += "cat <<'EOF'\nsome noise\n" + out + "\nEOF\n"
	}
	if err := os.WriteFile(py, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return py, count
}

func runs(t *testing.T, count string) int {
	b, _ := os.ReadFile(count)
	return strings.Count(string(b), "x")
}

// TestProbeSystemPython asks the real python3 (CI installs it): a module
// that is there, one that is not, and a directory put first on sys.path.
func TestProbeSystemPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 not found; .ci/run installs it")
		}
		t.Skip("no python3 on this machine")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "gsimprobe_mod.py"), []byte("__version__ = '1.2'\n"), 0o644)
	res, err := Probe(context.Background(), Request{Python: py, Path: []string{dir},
		Modules: []string{"json", "gsimprobe_mod", "gsim_no_such_module"}, CUDA: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Modules["json"].OK || res.Modules["gsimprobe_mod"].Version != "1.2" {
		t.Errorf("modules: %+v", res.Modules)
	}
	if m := res.Modules["gsim_no_such_module"]; m.OK || !strings.Contains(m.Error, "ModuleNotFoundError") {
		t.Errorf("missing module: %+v", m)
	}
	if res.Version == "" || res.Executable == "" {
		t.Errorf("interpreter: %+v", res)
	}
}

func TestCUDATorch(t *testing.T) {
	ctx := context.Background()
	all := `"torch": {"ok": true, "version": "2.11.0"}, "transformers": {"ok": true}, "transformers.generation.continuous_batching": {"ok": true}, "transformers.models.qwen3": {"ok": true}`
	cases := []struct {
		name, answer string
		need         []string
		want         []string // substrings; none: no problem
	}{
		{"gpu", `##pyprobe {"executable": "/opt/py", "version": "3.12.3", "modules": {` + all + `}, "cuda": {"available": true, "devices": 1, "device": "NVIDIA H200", "torch": "2.11.0"}}`,
			GPUModules, nil},
		{"cpu torch", `##pyprobe {"executable": "/opt/py", "version": "3.12.3", "modules": {` + all + `}, "cuda": {"available": false, "torch": "2.11.0+cpu"}}`,
			GPUModules, []string{"torch 2.11.0+cpu in", "(/opt/py, Python 3.12.3) sees no CUDA GPU"}},
		{"no torch", `##pyprobe {"executable": "/opt/py", "version": "3.11.2", "modules": {"torch": {"ok": false, "error": "ModuleNotFoundError: No module named 'torch'"}, "transformers": {"ok": false, "error": "ModuleNotFoundError: No module named 'transformers'"}}}`,
			[]string{"torch", "transformers"}, []string{"cannot import torch (ModuleNotFoundError: No module named 'torch')", "cannot import transformers"}},
		{"old transformers", `##pyprobe {"executable": "/opt/py", "version": "3.12.3", "modules": {"torch": {"ok": true}, "transformers": {"ok": true}, "transformers.generation.continuous_batching": {"ok": false, "error": "ModuleNotFoundError: x"}}, "cuda": {"available": true}}`,
			[]string{"torch", "transformers.generation.continuous_batching"}, []string{"cannot import transformers.generation.continuous_batching"}},
		{"garbage", `not json at all`, GPUModules, []string{"could not be asked what it imports"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			py, count := fakePython(t, c.answer)
			err := CUDATorch(ctx, py, c.need)
			if len(c.want) == 0 && err != nil {
				t.Fatalf("unexpected %v", err)
			}
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
			// The same interpreter again, for another kind: no second run.
			CUDATorch(ctx, py, []string{"torch"})
			if n := runs(t, count); n != 1 {
				t.Errorf("interpreter ran %d times, want once", n)
			}
		})
	}
}

func TestProbeFailures(t *testing.T) {
	ctx := context.Background()
	if _, err := Probe(ctx, Request{Python: filepath.Join(t.TempDir(), "no-python")}); err == nil || !strings.Contains(err.Error(), "cannot start") {
		t.Errorf("missing interpreter: %v", err)
	}
	if _, err := Probe(ctx, Request{Python: "gsim-no-such-python3"}); err == nil || !strings.Contains(err.Error(), "cannot start gsim-no-such-python3") {
		t.Errorf("interpreter not on PATH: %v", err)
	}
	py, _ := fakePython(t, "sleep")
	start := time.Now()
	_, err := Probe(ctx, Request{Python: py, Modules: []string{"torch"}, Timeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not answer within 200ms") {
		t.Errorf("stuck interpreter: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the probe waited %s for a stuck interpreter", d)
	}
	// A cancelled caller's failure is not remembered.
	py, count := fakePython(t, `##pyprobe {"version": "3", "modules": {}}`)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	Probe(cctx, Request{Python: py})
	if _, err := Probe(ctx, Request{Python: py}); err != nil || runs(t, count) != 1 {
		t.Errorf("after a cancelled probe: %v, %d runs", err, runs(t, count))
	}
}
