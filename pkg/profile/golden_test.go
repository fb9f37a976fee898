package profile

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestWriteGolden pins the bytes Write produces for the synthetic profile,
// so a change of column order or number formatting shows in review.
func TestWriteGolden(t *testing.T) {
	root := t.TempDir()
	if err := Write(root, synthetic()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "golden")
	files := []string{
		"profiling/compute/h100/Qwen/Qwen3-0.6B/mlp.csv",
		"profiling/compute/h100/Qwen/Qwen3-0.6B/attention.csv",
		CPUOverheadFile, ExtraOpsFile,
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(golden, filepath.FromSlash(f))
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./pkg/profile -update)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the golden file:\n got:\n%s\nwant:\n%s", f, got, want)
		}
	}
	// The golden folder is itself a valid profile.
	if err := Validate(golden); err != nil {
		t.Errorf("golden profile does not validate: %v", err)
	}
}
