package experiment_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/experiment"
)

// FuzzLoad: whatever the bytes, Load either returns a plan or positioned
// *experiment.Error values; it never panics.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "f.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := experiment.Load(path, experiment.Options{Registry: reg})
		if err == nil {
			checkInvariants(t, p)
			return
		}
		leaves := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			leaves = j.Unwrap()
		}
		for _, e := range leaves {
			var xe *experiment.Error
			if !errors.As(e, &xe) {
				t.Fatalf("not an *experiment.Error: %T %v", e, e)
			}
		}
	})
}
