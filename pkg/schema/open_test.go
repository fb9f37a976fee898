package schema

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

func TestReadersAcceptGzippedTokens(t *testing.T) {
	dir := t.TempDir()
	plain := "request_id,token_index,token_time_ns,token_latency_ns\n0,0,10,0\n0,1,25,15\n"
	path := filepath.Join(dir, TokenMetricsFile)
	f, err := os.Create(path + GzipSuffix)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte(plain))
	zw.Close()
	f.Close()

	if !Exists(path) {
		t.Fatal("Exists does not see the gzipped copy")
	}
	rows, err := ReadTokenMetrics(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].TokenLatencyNs != 15 {
		t.Fatalf("rows %+v", rows)
	}
	out := filepath.Join(dir, "copy.csv")
	if err := CopyPlain(path, out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != plain {
		t.Fatalf("CopyPlain wrote %q", b)
	}
	// A missing file is reported under its canonical name.
	if _, err := Open(filepath.Join(dir, StepMetricsFile)); err == nil || !os.IsNotExist(err) {
		t.Fatalf("want not-exist for a missing file, got %v", err)
	}
}
