package schema

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// simTokens emits token rows the way a batching engine does: steps of a
// running batch, one token per request per step, all at the step's end,
// requests joining as they arrive and leaving when done. It is the shape
// (and about the density) of the embedded simulator's token file.
func simTokens(n int) []TokenMetric {
	r := rand.New(rand.NewPCG(1, 2))
	type req struct{ id, next, left, last int64 }
	var running []req
	out := make([]TokenMetric, 0, n)
	var now, id int64
	for len(out) < n {
		for len(running) < 64+r.IntN(32) {
			running = append(running, req{id: id, left: 8 + int64(r.IntN(250))})
			id++
		}
		now += 15_000_000 + int64(len(running))*40_000 + int64(r.IntN(200_000))
		keep := running[:0]
		for _, q := range running {
			lat := int64(0)
			if q.next > 0 {
				lat = now - q.last
			}
			out = append(out, TokenMetric{RequestID: q.id, TokenIndex: q.next, TokenTimeNs: now, TokenLatencyNs: lat})
			q.next, q.last, q.left = q.next+1, now, q.left-1
			if q.left > 0 {
				keep = append(keep, q)
			}
		}
		running = keep
	}
	return out
}

// BenchmarkTokenFormats is the measurement behind the token file's format
// (docs/schemas.md): per stored form, the bytes per row and the time to
// write and to read back (with validation) a simulator-shaped token table.
//
//	go test ./pkg/schema -run XXX -bench TokenFormats -benchtime 3x
func BenchmarkTokenFormats(b *testing.B) {
	rows := simTokens(2_000_000)
	writeCSV := func(w io.Writer) error {
		tw := NewTokenMetricsWriter(w)
		for _, m := range rows {
			if err := tw.Write(m); err != nil {
				return err
			}
		}
		return tw.Flush()
	}
	forms := []struct {
		name  string
		file  string
		write func(w io.Writer) error
		read  func(path string) error
	}{
		{"csv", TokenMetricsFile, writeCSV, nil},
		{"csv.gz-1", TokenMetricsFile + GzipSuffix, func(w io.Writer) error {
			z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			if err := writeCSV(z); err != nil {
				return err
			}
			return z.Close()
		}, nil},
		{"csv.zst-fastest", TokenMetricsFile + ".zst", func(w io.Writer) error {
			z, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			if err := writeCSV(z); err != nil {
				return err
			}
			return z.Close()
		}, func(path string) error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			z, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return err
			}
			defer z.Close()
			seq := newTokenSeq(path)
			return scanIntsReader(z, path, TokenMetricsColumns, func(row int, v []int64) error {
				return seq.add(row, TokenMetric{v[0], v[1], v[2], v[3]})
			})
		}},
		{"parquet-zstd", TokenMetricsParquet, func(w io.Writer) error {
			// Earlier versions: parquet-go's writer, delta, zstd.
			pw := newParquetWriter[tokenRow](w)
			for _, m := range rows {
				if err := pw.add(tokenRow(m)); err != nil {
					return err
				}
			}
			return pw.close()
		}, nil},
		{"parquet", TokenMetricsParquet, func(w io.Writer) error {
			// What runs write now: intParquetWriter, delta, Snappy.
			pw := newIntParquetWriter(w, TokenMetricsColumns)
			for i := 0; i < len(rows); i += tokenBatch {
				if err := pw.addTokens(rows[i:min(len(rows), i+tokenBatch)]); err != nil {
					return err
				}
			}
			return pw.close()
		}, nil},
	}
	for _, f := range forms {
		b.Run(f.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), f.file)
			var size int64
			var wns, rns int64
			for i := 0; i < b.N; i++ {
				var buf bytes.Buffer
				b.StartTimer()
				start := nowNs()
				if err := f.write(&buf); err != nil {
					b.Fatal(err)
				}
				wns += nowNs() - start
				size = int64(buf.Len())
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					b.Fatal(err)
				}
				start = nowNs()
				var err error
				if f.read != nil {
					err = f.read(path)
				} else {
					_, err = scanTokens(filepath.Join(filepath.Dir(path), TokenMetricsFile), nil)
				}
				if err != nil {
					b.Fatal(err)
				}
				rns += nowNs() - start
			}
			n := float64(b.N) * float64(len(rows))
			b.ReportMetric(float64(size)/float64(len(rows)), "bytes/row")
			b.ReportMetric(float64(wns)/n, "write-ns/row")
			b.ReportMetric(float64(rns)/n, "read-ns/row")
		})
	}
}

func nowNs() int64 { return time.Now().UnixNano() }
