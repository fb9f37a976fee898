package schema

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/internal/fuzzdir"
)

// Fuzz targets of the canonical artifact readers (run folders, workload
// folders). Whatever the bytes, a reader returns rows or an error that
// names the file; it never panics or hangs. Seeds are the heads of the
// recorded files, so the fuzzer starts from valid input.

const recordedRun = "../../testdata/real/h100-qwen3-0.6b/rate-2"

// head returns the first n lines of a recorded file (gunzipped).
func head(t testing.TB, path string, n int) []byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var b bytes.Buffer
	for i := 0; i < n && sc.Scan(); i++ {
		b.Write(sc.Bytes())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// fuzzDir is one folder per fuzzing process, reused by every input: a
// fresh temporary folder per input would cost more than the read.
var fuzzDir = fuzzdir.New("gsim-fuzz-schema-")

func TestMain(m *testing.M) { fuzzdir.Main(m, fuzzDir) }

// fuzzFile writes data as name in the fuzzing folder and returns its path.
func fuzzFile(t *testing.T, name string, data []byte) string {
	p := filepath.Join(fuzzDir.Path(t), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// namesFile fails the test if a reader's error does not say which file.
func namesFile(t *testing.T, err error, name string) {
	if err != nil && !strings.Contains(err.Error(), name) {
		t.Errorf("error does not name %s: %v", name, err)
	}
}

func FuzzReadRequestMetrics(f *testing.F) {
	f.Add(head(f, filepath.Join(recordedRun, "run", RequestMetricsFile), 20))
	f.Add([]byte("request_id\n1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzFile(t, RequestMetricsFile, data)
		_, err := ReadRequestMetrics(p)
		namesFile(t, err, RequestMetricsFile)
	})
}

func FuzzReadTokenMetrics(f *testing.F) {
	f.Add(head(f, filepath.Join(recordedRun, "run", TokenMetricsFile+".gz"), 30), false)
	f.Add(head(f, filepath.Join(recordedRun, "run", TokenMetricsFile+".gz"), 30), true)
	f.Fuzz(func(t *testing.T, data []byte, gz bool) {
		name := TokenMetricsFile
		if gz {
			// The bytes as a .gz file: a damaged or plain file named .gz.
			name += ".gz"
		}
		p := fuzzFile(t, name, data)
		_, err := ReadTokenMetrics(p)
		namesFile(t, err, name)
	})
}

func FuzzReadStepMetrics(f *testing.F) {
	f.Add(head(f, filepath.Join(recordedRun, "run", StepMetricsFile), 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzFile(t, StepMetricsFile, data)
		_, err := ReadStepMetrics(p)
		namesFile(t, err, StepMetricsFile)
	})
}

func FuzzReadRunMeta(f *testing.F) {
	b, err := os.ReadFile(filepath.Join(recordedRun, "run", RunMetaFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"schema_version": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzFile(t, RunMetaFile, data)
		_, err := ReadRunMeta(p)
		namesFile(t, err, RunMetaFile)
	})
}

// FuzzReadWorkload: both files of a workload folder at once, so that
// disagreements between them (ids, counts) are reached too.
func FuzzReadWorkload(f *testing.F) {
	f.Add(head(f, filepath.Join(recordedRun, "workload", TraceLengthsFile), 10),
		head(f, filepath.Join(recordedRun, "workload", TraceIntervalsFile), 10))
	f.Fuzz(func(t *testing.T, lengths, intervals []byte) {
		fuzzFile(t, TraceLengthsFile, lengths)
		dir := filepath.Dir(fuzzFile(t, TraceIntervalsFile, intervals))
		w, err := ReadWorkload(dir)
		if err == nil && w == nil {
			t.Error("no workload and no error")
		}
		_ = ValidateWorkloadDir(dir)
	})
}
