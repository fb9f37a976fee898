// Package stages_test runs the out-of-process runners' own unit tests (their
// torch-free parts) with the system python3, so `go test ./...` covers them.
package stages_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestPythonRunners(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 not found; .ci/run installs Debian's python3")
		}
		t.Skip("python3 not found: the runners' unit tests need it (apt-get install python3)")
	}
	dirs, _ := filepath.Glob("*/tests")
	if len(dirs) == 0 {
		t.Fatal("no stages/*/tests folders found")
	}
	for _, d := range dirs {
		d := d
		t.Run(filepath.Dir(d), func(t *testing.T) {
			cmd := exec.Command(py, "-m", "unittest", "discover", "-s", filepath.Join("stages", d))
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("python3 -m unittest in stages/%s failed: %v\n%s", filepath.Dir(d), err, out)
			}
			t.Logf("%s", out)
		})
	}
}
