package chaos

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/kinds"
	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/vidur"
)

// mutate returns b changed the ways files really get damaged or mistyped:
// flipped and dropped bytes, truncation, a deleted, doubled or swapped line,
// a value replaced by an odd one, an indentation change.
func mutate(r *rand.Rand, b []byte) []byte {
	b = append([]byte(nil), b...)
	lines := bytes.SplitAfter(b, []byte("\n"))
	odd := []string{"", "-1", "0", "1e309", "NaN", "-0", "..", ".", "[]", "{}", "null", "~", "\"", "'", "&a", "*a", "!!binary x",
		strings.Repeat("9", 40), strings.Repeat("x", 300), "${{ matrix.nope }}", "${{", "\t", "\x00", "é", "3.5", "true"}
	for n := 1 + r.IntN(3); n > 0; n-- {
		if len(b) == 0 {
			return []byte(odd[r.IntN(len(odd))])
		}
		switch r.IntN(8) {
		case 0: // flip a byte
			i := r.IntN(len(b))
			b[i] ^= byte(1 << r.IntN(8))
		case 1: // drop a span
			i := r.IntN(len(b))
			j := min(len(b), i+1+r.IntN(16))
			b = append(b[:i], b[j:]...)
		case 2: // truncate
			b = b[:r.IntN(len(b))]
		case 3, 4, 5: // a line deleted, doubled or moved
			lines = bytes.SplitAfter(b, []byte("\n"))
			i := r.IntN(len(lines))
			switch r.IntN(3) {
			case 0:
				lines = append(lines[:i], lines[i+1:]...)
			case 1:
				lines = append(lines[:i+1], lines[i:]...)
			default:
				j := r.IntN(len(lines))
				lines[i], lines[j] = lines[j], lines[i]
			}
			b = bytes.Join(lines, nil)
		case 6: // a value replaced
			lines = bytes.SplitAfter(b, []byte("\n"))
			i := r.IntN(len(lines))
			l := lines[i]
			if k := bytes.LastIndexAny(l, ":,="); k >= 0 {
				nl := bytes.HasSuffix(l, []byte("\n"))
				l = append(append([]byte(nil), l[:k+1]...), " "+odd[r.IntN(len(odd))]...)
				if nl {
					l = append(l, '\n')
				}
				lines[i] = l
			}
			b = bytes.Join(lines, nil)
		default: // indentation
			lines = bytes.SplitAfter(b, []byte("\n"))
			i := r.IntN(len(lines))
			if r.IntN(2) == 0 {
				lines[i] = append([]byte("  "), lines[i]...)
			} else {
				lines[i] = bytes.TrimLeft(lines[i], " ")
			}
			b = bytes.Join(lines, nil)
		}
	}
	return b
}

// guarded runs f, turning a panic into a counted failure and a run past
// deadline into a counted hang.
func guarded(t *testing.T, what string, deadline time.Duration, f func()) {
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	select {
	case p := <-done:
		if p != nil {
			count(func(f *Figures) { f.Panics++ })
			t.Errorf("%s panicked: %v\n%s", what, p, debug.Stack())
		}
	case <-time.After(deadline):
		count(func(f *Figures) { f.Hangs++ })
		t.Errorf("%s did not return within %v", what, deadline)
	}
}

// The repository's experiments, mutated, through the loader (and a sample
// through `gsim run --dry-run`): an accepted file is a plan, a refused one
// gets errors that say file:line:col; nothing panics or hangs.
func TestMutatedExperiments(t *testing.T) {
	r := rng(t)
	var seeds [][]byte
	for _, glob := range []string{"../../experiments/*.yaml", "../../pkg/experiment/testdata/*/*.yaml", "../../testdata/*/*/*.yaml"} {
		ms, _ := filepath.Glob(glob)
		for _, m := range ms {
			if b, err := os.ReadFile(m); err == nil {
				seeds = append(seeds, b)
			}
		}
	}
	if len(seeds) == 0 {
		t.Fatal("no experiment files to mutate")
	}
	dir := t.TempDir()
	// Relative paths in the experiments resolve against their folder.
	expDir := filepath.Join(dir, "experiments")
	os.MkdirAll(expDir, 0o755)
	os.Symlink(mustAbs(t, "../../testdata"), filepath.Join(dir, "testdata"))
	os.Symlink(mustAbs(t, "../../stages"), filepath.Join(dir, "stages"))
	reg := kinds.Registry()
	n := scale(300, 5000)
	cli := scale(10, 150)
	w := &world{t: t, dir: dir, store: filepath.Join(dir, "store")}
	for i := 0; i < n; i++ {
		src := mutate(r, seeds[r.IntN(len(seeds))])
		path := filepath.Join(expDir, fmt.Sprintf("m%d.yaml", i%50))
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		count(func(f *Figures) { f.MutatedYAML++ })
		guarded(t, "experiment.Load of a mutated file", 10*time.Second, func() {
			_, err := experiment.Load(path, experiment.Options{Registry: reg})
			if err == nil {
				count(func(f *Figures) { f.YAMLAccepted++ })
				return
			}
			for _, e := range leaves(err) {
				var xe *experiment.Error
				if !errors.As(e, &xe) || !strings.HasPrefix(e.Error(), path+":") {
					count(func(f *Figures) { f.Unpositioned++ })
					t.Errorf("error without its position: %v\n--- file:\n%s", e, src)
				}
			}
		})
		if i < cli {
			count(func(f *Figures) { f.MutatedYAMLCLI++ })
			o := w.gsim(time.Minute, "run", path, "--dry-run")
			if o.code != 0 && o.code != 2 {
				t.Errorf("gsim run --dry-run of a mutated file: exit %d\n%s", o.code, o.stderr)
			}
		}
	}
}

func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A recorded artifact folder with one file mutated, through its reader:
// rows or an error, never a panic or a hang.
func TestMutatedArtifacts(t *testing.T) {
	r := rng(t)
	type folder struct {
		src   string
		files []string
		read  func(dir string) error
	}
	work, err := schema.ReadWorkload("../../testdata/vidur/qwen3-h100-vllm-300/workload")
	if err != nil {
		t.Fatal(err)
	}
	folders := []folder{
		{"../../testdata/real/h100-qwen3-0.6b/rate-2/run",
			[]string{schema.RequestMetricsFile, schema.TokenMetricsFile + ".gz", schema.StepMetricsFile, schema.RunMetaFile},
			func(dir string) error {
				if _, err := schema.ReadRun(dir); err != nil {
					return err
				}
				return schema.ValidateRun(dir)
			}},
		{"../../testdata/real/h100-qwen3-0.6b/rate-2/workload",
			[]string{schema.TraceLengthsFile, schema.TraceIntervalsFile, schema.WorkloadMetaFile},
			func(dir string) error {
				if _, err := schema.ReadWorkload(dir); err != nil {
					return err
				}
				return schema.ValidateWorkloadDir(dir)
			}},
		{"../../testdata/profile/h100",
			[]string{"profiling/compute/h100/Qwen/Qwen3-0.6B/mlp.csv", "profiling/compute/h100/Qwen/Qwen3-0.6B/attention.csv", "profile_meta.json", "extra_ops.csv"},
			func(dir string) error { _, err := profile.Read(dir); return err }},
		{"../../testdata/vidur/qwen3-h100-vllm-300/raw",
			[]string{vidur.VidurRequestMetricsFile, vidur.RawChromeTraceFile},
			func(dir string) error { _, err := vidur.ConvertOutput(dir, work.Requests); return err }},
	}
	n := scale(120, 2000)
	for i := 0; i < n; i++ {
		fo := folders[r.IntN(len(folders))]
		dir := filepath.Join(t.TempDir(), "f")
		if err := copyTree(fo.src, dir); err != nil {
			t.Fatal(err)
		}
		name := fo.files[r.IntN(len(fo.files))]
		p := filepath.Join(dir, name)
		b, err := readMaybeGz(p)
		if err != nil {
			t.Fatal(err)
		}
		b = mutate(r, b)
		if strings.HasSuffix(p, ".gz") && r.IntN(4) > 0 {
			b = gz(b) // mostly a valid gzip of damaged text; sometimes raw bytes
		}
		os.WriteFile(p, b, 0o644)
		count(func(f *Figures) { f.MutatedArtifact++ })
		guarded(t, "reading a mutated "+name, 30*time.Second, func() { _ = fo.read(dir) })
	}
}

func readMaybeGz(p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil || !strings.HasSuffix(p, ".gz") {
		return b, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}
