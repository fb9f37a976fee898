package workload

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/internal/fuzzdir"
)

// Fuzz targets of the files a workload stage reads (empirical length tables
// and arrival traces): whatever the bytes, a table or an error, never a
// panic or a hang.

var fuzzDir = fuzzdir.New("gsim-fuzz-workload-")

func TestMain(m *testing.M) { fuzzdir.Main(m, fuzzDir) }

func fuzzWrite(t *testing.T, name string, data []byte) string {
	p := filepath.Join(fuzzDir.Path(t), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func seed(f *testing.F, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	if len(b) > 2048 {
		b = b[:2048]
	}
	return b
}

func FuzzReadTable(f *testing.F) {
	// The file's extension picks the reader as much as its content does.
	exts := []string{".csv", ".jsonl", ".json", ".txt", ""}
	f.Add(seed(f, "testdata/vidur_trace.csv"), uint8(0))
	f.Add(seed(f, "testdata/lengths.jsonl"), uint8(1))
	f.Add([]byte(`[{"num_prefill_tokens": 3, "num_decode_tokens": 4.0}]`), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		ext := exts[int(which)%len(exts)]
		tb, err := readTable(fuzzWrite(t, "table"+ext, data), quoter{})
		if err != nil {
			return
		}
		for _, col := range []string{"num_prefill_tokens", "num_decode_tokens"} {
			vals, err := tb.column(col)
			if err != nil {
				continue
			}
			for _, v := range vals {
				if v < 1 {
					t.Errorf("column %s holds %d; lengths are >= 1", col, v)
				}
			}
		}
	})
}

func FuzzTraceArrivals(f *testing.F) {
	f.Add(seed(f, "testdata/vidur_trace.csv"), 5)
	f.Add([]byte("arrival_time_ns\n5\n3\n"), 2)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		if n < 1 || n > 1000 {
			return
		}
		times, err := traceArrivals(fuzzWrite(t, "trace.csv", data), n, 0, quoter{})
		if err != nil {
			return
		}
		for i := 1; i < len(times); i++ {
			if times[i] < times[i-1] {
				t.Fatalf("arrivals go back in time at %d: %d < %d", i, times[i], times[i-1])
			}
		}
	})
}
