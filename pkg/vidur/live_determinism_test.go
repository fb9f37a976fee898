package vidur_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/vidur"
)

// TestLiveVidurDeterministic: one vidur stage key must give one result,
// whatever Vidur's predictor cache holds and whatever runs beside it.
// Vidur builds its random forests without random_state, so they drew from
// the process-wide random stream, and a forest loaded from the cache
// shifted the stream for every forest trained after it. The shim seeds each
// estimator from what it is trained on; this runs real Vidur four times on
// one workload and settings and requires byte-identical outputs: two cold
// runs side by side on one empty cache (each may load what the other
// stored), one on that cache with half its forests deleted (the rest
// loaded, the deleted ones trained again), and one on a cache of its own.
// Needs GSIM_VIDUR (docs/vidur.md).
func TestLiveVidurDeterministic(t *testing.T) {
	if os.Getenv("GSIM_VIDUR") == "" {
		t.Skip("GSIM_VIDUR not set: point it at a microsoft/vidur checkout to run real Vidur (docs/vidur.md)")
	}
	prof := liveProfile(t)
	base, _ := filepath.Abs("../..")
	workDir := liveWorkload(t, 30, 8, 5, [2]float64{300, 200}, [2]float64{30, 20}, [2]int64{16, 768}, [2]int64{4, 128})
	shared := t.TempDir()
	run := func(name, cache string) string {
		params := map[string]any{"scheduler": "vllm", "profile": prof, "max_tokens": 1024, "max_batch_tokens": 1024,
			"batch_size_cap": 16, "num_estimators": []any{16}, "max_depth": []any{8}, "cache_dir": cache}
		out := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Error(err)
			return out
		}
		err := vidur.NewKind().Run(context.Background(), &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: base, Stage: "vidur",
			Instance: "vidur", Kind: "vidur", Params: params, OutDir: out,
			Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: workDir}}}}, stage.Env{Log: testLog()})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		return out
	}
	var a, b string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = run("cold-a", shared) }()
	go func() { defer wg.Done(); b = run("cold-b", shared) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	removed := thinCache(t, shared)
	t.Logf("deleted %d of the cached forests and every cached prediction", removed)
	c := run("partial-cache", shared)
	d := run("own-cache", t.TempDir())
	for _, other := range []string{b, c, d} {
		sameFiles(t, a, other)
	}
}

// thinCache deletes every other trained model in a Vidur predictor cache
// (sorted by name) and every cached prediction table, so the next run
// loads some forests and trains the others.
func thinCache(t *testing.T, cache string) int {
	t.Helper()
	var models []string
	err := filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pkl") {
			return err
		}
		if strings.HasSuffix(p, "_predictions.pkl") {
			return os.Remove(p)
		}
		models = append(models, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(models)
	if len(models) < 4 {
		t.Fatalf("%d models in the cache %s; expected Vidur's forests", len(models), cache)
	}
	n := 0
	for i := 0; i < len(models); i += 2 {
		if err := os.Remove(models[i]); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// sameFiles requires two vidur stage outputs to hold the same files with
// the same bytes, but for the ones the kind declares volatile (paths and
// wall seconds of the run).
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	volatile := vidur.NewKind().(stage.Volatile).VolatileFiles()
	list := func(root string) map[string][]byte {
		out := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if slices.Contains(volatile, rel) {
				return nil
			}
			out[rel], err = os.ReadFile(p)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	fa, fb := list(a), list(b)
	if len(fa) != len(fb) {
		t.Errorf("%s holds %d files, %s %d", a, len(fa), b, len(fb))
	}
	for name, x := range fa {
		if y, ok := fb[name]; !ok || !bytes.Equal(x, y) {
			t.Errorf("%s differs between %s and %s", name, filepath.Base(a), filepath.Base(b))
		}
	}
}
