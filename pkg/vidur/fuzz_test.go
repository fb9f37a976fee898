package vidur

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/internal/fuzzdir"
	"github.com/gsim-dev/gsim/pkg/schema"
)

// Fuzz targets of Vidur's output readers and the converter behind them:
// whatever Vidur (or a damaged file) left, rows or an error, never a panic
// or a hang. Seeds are the heads of a recorded real Vidur run.

const recorded = "../../testdata/vidur/qwen3-h100-vllm-300"

var fuzzDir = fuzzdir.New("gsim-fuzz-vidur-")

func TestMain(m *testing.M) { fuzzdir.Main(m, fuzzDir) }

func fuzzWrite(t *testing.T, name string, data []byte) string {
	p := filepath.Join(fuzzDir.Path(t), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordedHead returns the first n bytes of a recorded file, gunzipped.
func recordedHead(f *testing.F, name string, n int) []byte {
	b, err := os.ReadFile(filepath.Join(recorded, "raw", name))
	if err != nil {
		f.Fatal(err)
	}
	if filepath.Ext(name) == ".gz" {
		gz, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			f.Fatal(err)
		}
		b, _ = io.ReadAll(io.LimitReader(gz, int64(n)))
	}
	if len(b) > n {
		b = b[:n]
	}
	return b
}

func FuzzReadRequests(f *testing.F) {
	f.Add(recordedHead(f, VidurRequestMetricsFile, 4096))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadRequests(fuzzWrite(t, VidurRequestMetricsFile, data))
	})
}

func FuzzReadChromeTrace(f *testing.F) {
	head := closeEvents(recordedHead(f, RawChromeTraceFile, 2048))
	f.Add(head, false)
	f.Add(head, true)
	f.Fuzz(func(t *testing.T, data []byte, gz bool) {
		name := ChromeTraceFile
		if gz {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write(data)
			w.Close()
			data, name = b.Bytes(), RawChromeTraceFile
		}
		_, _ = ReadChromeTrace(fuzzWrite(t, name, data))
	})
}

// FuzzConvertOutput: both of Vidur's files at once against the recorded
// workload, so the converter meets inconsistent pairs.
func FuzzConvertOutput(f *testing.F) {
	w, err := schema.ReadWorkload(filepath.Join(recorded, "workload"))
	if err != nil {
		f.Fatal(err)
	}
	// A small run: the first requests and the first batches, so that one
	// conversion costs microseconds, not the whole recorded run.
	const n = 11
	reqs := recordedHead(f, VidurRequestMetricsFile, 1<<16)
	if lines := bytes.SplitAfter(reqs, []byte("\n")); len(lines) > n+1 {
		reqs = bytes.Join(lines[:n+1], nil)
	}
	trace := closeEvents(recordedHead(f, RawChromeTraceFile, 16<<10))
	work := w.Requests[:n]
	f.Add(reqs, trace)
	f.Fuzz(func(t *testing.T, reqs, trace []byte) {
		fuzzWrite(t, VidurRequestMetricsFile, reqs)
		dir := filepath.Dir(fuzzWrite(t, ChromeTraceFile, trace))
		_, _ = ConvertOutput(dir, work)
	})
}

// closeEvents ends a chrome trace cut off in its event list after the last
// whole event, so the seed is valid JSON.
func closeEvents(head []byte) []byte {
	if i := bytes.LastIndex(head, []byte("}}, {")); i > 0 {
		return append(append([]byte(nil), head[:i+2]...), "]}"...)
	}
	return head
}
