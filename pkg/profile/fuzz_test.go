package profile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/internal/fuzzdir"
)

// fuzzDir is one folder per fuzzing process, reused by every input.
var fuzzDir = fuzzdir.New("gsim-fuzz-profile-")

func TestMain(m *testing.M) { fuzzdir.Main(m, fuzzDir) }

// FuzzRead: a profile folder with one of its files replaced by arbitrary
// bytes reads as a profile or fails with errors naming the file; it never
// panics or hangs.
func FuzzRead(f *testing.F) {
	model := filepath.Join("profiling", "compute", "h100", "Qwen", "Qwen3-0.6B")
	files := []string{filepath.Join(model, MLPFile), filepath.Join(model, AttentionFile), CPUOverheadFile, ExtraOpsFile}
	golden := filepath.Join("testdata", "golden")
	orig := map[string][]byte{}
	for i, name := range files {
		b, err := os.ReadFile(filepath.Join(golden, name))
		if err != nil {
			f.Fatal(err)
		}
		orig[name] = b
		f.Add(uint8(i), head(b, 6))
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		dir := fuzzDir.Path(t)
		for i, name := range files {
			b := orig[name]
			if int(which)%len(files) == i {
				b = data
			}
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, err := Read(dir)
		if err == nil && p == nil {
			t.Error("no profile and no error")
		}
	})
}

// head is the first n lines of b.
func head(b []byte, n int) []byte {
	for i, c := range b {
		if c == '\n' {
			if n--; n == 0 {
				return b[:i+1]
			}
		}
	}
	return b
}
