package vidur

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkout makes a stand-in Vidur tree whose vidur.main runs body on import.
func checkout(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "vidur"), 0o755)
	os.WriteFile(filepath.Join(dir, "vidur", "__init__.py"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "vidur", "main.py"), []byte(body), 0o644)
	return dir
}

// TestPreflight asks a real python3 to import stand-in Vidur trees: the
// probe imports vidur.main exactly as the shim does (stubs first on the
// path), so a missing dependency is found before any stage starts.
func TestPreflight(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	repo, _ := filepath.Abs("../..")
	t.Setenv("GSIM_STAGES_DIR", filepath.Join(repo, "stages"))
	t.Setenv("GSIM_VIDUR", "")
	t.Setenv("GSIM_VIDUR_STUBS", "")
	t.Setenv("GSIM_VIDUR_PYTHON", py)
	stubs := t.TempDir()
	os.WriteFile(filepath.Join(stubs, "gsim_stub_dep.py"), nil, 0o644)
	ok := checkout(t, "import gsim_stub_dep\n")
	broken := checkout(t, "import sklearn_gsim_missing\n")
	usesStandins := checkout(t, "import ddsketch\n")
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		params map[string]any
		want   []string // none: no problem
	}{
		{"no checkout named", map[string]any{}, []string{"where is Vidur?"}},
		{"not a checkout", map[string]any{"vidur_path": t.TempDir()}, []string{"is not a Vidur checkout (no vidur/main.py)"}},
		{"imports with the stubs", map[string]any{"vidur_path": ok, "stubs": stubs}, nil},
		{"a stub missing", map[string]any{"vidur_path": ok}, []string{"cannot import Vidur from " + ok, "No module named 'gsim_stub_dep'"}},
		{"a dependency missing", map[string]any{"vidur_path": broken, "stubs": stubs}, []string{"No module named 'sklearn_gsim_missing'", "uses: sim"}},
		// gsim's own stand-ins (stages/vidur/standins) are on the path, last.
		{"gsim's stand-ins", map[string]any{"vidur_path": usesStandins}, nil},
		{"no interpreter", map[string]any{"vidur_path": ok, "python": filepath.Join(t.TempDir(), "python9")}, []string{"cannot start", "$GSIM_VIDUR_PYTHON"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Preflight(ctx, c.params, repo)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
		})
	}
	if a, b := PreflightKey(map[string]any{"vidur_path": ok}, repo), PreflightKey(map[string]any{"vidur_path": ok, "scheduler": "sarathi"}, repo); a != b || a == "" {
		t.Errorf("runs on one checkout and interpreter should share a check: %q vs %q", a, b)
	}
}

// TestLivePreflight: with a real checkout (GSIM_VIDUR, GSIM_VIDUR_STUBS),
// the check passes, so it never blocks a run that would work.
func TestLivePreflight(t *testing.T) {
	if os.Getenv("GSIM_VIDUR") == "" {
		t.Skip("GSIM_VIDUR not set: point it at a microsoft/vidur checkout (docs/vidur.md)")
	}
	repo, _ := filepath.Abs("../..")
	if err := Preflight(context.Background(), map[string]any{}, repo); err != nil {
		t.Fatalf("a working Vidur fails the preflight: %v", err)
	}
}
