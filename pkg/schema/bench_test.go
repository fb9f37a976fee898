package schema

import (
	"os"
	"path/filepath"
	"testing"
)

// writeBigTokens writes 10k requests x 256 tokens = 2.56M rows, the size of
// a long real run, with request rows interleaved in pairs the way a
// continuous-batching engine emits them.
func writeBigTokens(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), TokenMetricsFile)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := NewTokenMetricsWriter(f)
	for r := int64(0); r < 10000; r += 2 {
		base := r * 1_000_000_000
		for i := int64(0); i < 256; i++ {
			for _, id := range []int64{r, r + 1} {
				lat := int64(12_345_678)
				if i == 0 {
					lat = 0
				}
				if err := w.Write(TokenMetric{id, i, base + i*12_345_678, lat}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

func BenchmarkReadTokenMetrics2560k(b *testing.B) {
	path := writeBigTokens(b)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ResetTimer()
	for b.Loop() {
		rows, err := ReadTokenMetrics(path)
		if err != nil || len(rows) != 2_560_000 {
			b.Fatalf("%d rows, %v", len(rows), err)
		}
	}
}

func BenchmarkScanTokenMetrics2560k(b *testing.B) {
	path := writeBigTokens(b)
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := ScanTokenMetrics(path, func(TokenMetric) error { n++; return nil }); err != nil || n != 2_560_000 {
			b.Fatalf("%d rows, %v", n, err)
		}
	}
}

func BenchmarkWriteTokenMetrics2560k(b *testing.B) {
	for b.Loop() {
		writeBigTokens(b)
	}
}

func BenchmarkReadRequestMetrics1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), RequestMetricsFile)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := NewRequestMetricsWriter(f)
	for i := int64(0); i < 1_000_000; i++ {
		a := i * 250_000_000
		w.Write(RequestMetric{RequestID: i, ArrivalTimeNs: a, FirstTokenTimeNs: a + 30_000_000, TTFTNs: 30_000_000,
			CompletionTimeNs: a + 2_000_000_000, NumPrefillTokens: 512, NumDecodeTokens: 128, NumDecodeTokensActual: 128, Status: StatusOK})
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.ResetTimer()
	for b.Loop() {
		rows, err := ReadRequestMetrics(path)
		if err != nil || len(rows) != 1_000_000 {
			b.Fatalf("%d rows, %v", len(rows), err)
		}
	}
}

// BenchmarkScanTokensBatched reads 2.56M token rows written the way a
// simulator writes them: each iteration emits one token for each of the 64
// requests in its batch, so consecutive rows never share a request.
func BenchmarkScanTokensBatched(b *testing.B) {
	path := filepath.Join(b.TempDir(), TokenMetricsFile)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := NewTokenMetricsWriter(f)
	const batch, tokens = 64, 256
	for r0 := int64(0); r0 < 10000; r0 += batch {
		for i := int64(0); i < tokens; i++ {
			for id := r0; id < r0+batch && id < 10000; id++ {
				lat := int64(20_000_000)
				if i == 0 {
					lat = 0
				}
				if err := w.Write(TokenMetric{id, i, r0*1_000_000 + i*20_000_000, lat}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ScanTokenMetrics(path, func(TokenMetric) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
