package schema

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// writeIntTokens writes rows with intParquetWriter in batches of batch rows.
func writeIntTokens(t *testing.T, rows []tokenRow, batch int) []byte {
	t.Helper()
	var buf bytes.Buffer
	p := newIntParquetWriter(&buf, TokenMetricsColumns)
	for i := 0; i < len(rows); i += batch {
		var ms []TokenMetric
		for _, r := range rows[i:min(len(rows), i+batch)] {
			ms = append(ms, TokenMetric(r))
			if len(ms)%7 == 3 {
				// A request marker of the run writer's pipe, which the
				// encoder skips.
				ms = append(ms, TokenMetric{RequestID: 1, TokenIndex: markerIndex})
			}
		}
		if err := p.addTokens(ms); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The writer's files read back, value for value, through gsim's column
// reader and through parquet-go's own row reader, across pages and row
// groups, whatever the values (extremes whose deltas overflow included); the
// footer's statistics are each column's range; the same rows give the same
// bytes.
func TestIntParquetRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, intPageRows - 1, intPageRows + 1, parquetRowGroup, 2*parquetRowGroup + 77} {
		rows := make([]tokenRow, n)
		for i := range rows {
			rows[i] = tokenRow{int64(i / 3), int64(i % 3), int64(i) * 1000, r.Int64N(1 << 40)}
		}
		if n > 10 {
			// Extremes: deltas between them overflow an int64.
			rows[5].TokenLatencyNs, rows[6].TokenLatencyNs, rows[7].TokenLatencyNs = math.MaxInt64, math.MinInt64, 0
			rows[8].RequestID = -1
		}
		data := writeIntTokens(t, rows, 1000)
		if again := writeIntTokens(t, rows, 333); !bytes.Equal(data, again) {
			t.Fatalf("n=%d: the same rows gave different bytes when handed over in other batches", n)
		}
		path := filepath.Join(t.TempDir(), TokenMetricsParquet)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var got []tokenRow
		err := scanParquetInts(path, TokenMetricsColumns, func(row int, v []int64) error {
			if row != len(got)+1 {
				t.Fatalf("row %d after %d rows", row, len(got))
			}
			got = append(got, tokenRow{v[0], v[1], v[2], v[3]})
			return nil
		})
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(got) != n {
			t.Fatalf("n=%d: read %d rows", n, len(got))
		}
		for i := range rows {
			if got[i] != rows[i] {
				t.Fatalf("n=%d row %d: read %+v, wrote %+v", n, i+1, got[i], rows[i])
			}
		}
		pr, err := parquet.Read[tokenRow](bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("n=%d: parquet-go cannot read it: %v", n, err)
		}
		if len(pr) != n {
			t.Fatalf("n=%d: parquet-go read %d rows", n, len(pr))
		}
		for i := range rows {
			if pr[i] != rows[i] {
				t.Fatalf("n=%d row %d: parquet-go read %+v, wrote %+v", n, i+1, pr[i], rows[i])
			}
		}
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		start := 0
		for g, rg := range f.Metadata().RowGroups {
			end := start + int(rg.NumRows)
			for c, cc := range rg.Columns {
				lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
				for _, row := range rows[start:end] {
					v := [4]int64{row.RequestID, row.TokenIndex, row.TokenTimeNs, row.TokenLatencyNs}[c]
					lo, hi = min(lo, v), max(hi, v)
				}
				st := cc.MetaData.Statistics
				if gl, gh := int64(binary.LittleEndian.Uint64(st.MinValue)), int64(binary.LittleEndian.Uint64(st.MaxValue)); gl != lo || gh != hi {
					t.Fatalf("n=%d row group %d column %s: statistics [%d, %d], values span [%d, %d]", n, g, TokenMetricsColumns[c], gl, gh, lo, hi)
				}
			}
			start = end
		}
	}
}

// minMax agrees with a plain scan at every length and alignment.
func TestMinMax(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := 1; n < 40; n++ {
		vals := make([]int64, n)
		for i := range vals {
			vals[i] = r.Int64() - math.MaxInt64/2
		}
		lo, hi := vals[0], vals[0]
		for _, v := range vals {
			lo, hi = min(lo, v), max(hi, v)
		}
		if gl, gh := minMax(vals); gl != lo || gh != hi {
			t.Fatalf("n=%d: minMax (%d, %d), want (%d, %d)", n, gl, gh, lo, hi)
		}
	}
}

// Token tables written by other tools read too: pyarrow (pandas) stores
// int64 columns dictionary encoded, and earlier gsim versions compressed
// with zstd.
func TestReadsOtherParquetWriters(t *testing.T) {
	rows := make([]tokenRow, 3*parquetRowGroup/2)
	for i := range rows {
		rows[i] = tokenRow{int64(i / 100), int64(i % 100), int64(i/100)*1_000_000 + int64(i%100)*20_000, 0}
		if i%100 > 0 {
			rows[i].TokenLatencyNs = 20_000
		}
	}
	type dictRow struct {
		RequestID      int64 `parquet:"request_id,dict"`
		TokenIndex     int64 `parquet:"token_index"`
		TokenTimeNs    int64 `parquet:"token_time_ns,dict,snappy"`
		TokenLatencyNs int64 `parquet:"token_latency_ns,dict"`
	}
	writers := map[string]func(*os.File) error{
		"dictionary": func(f *os.File) error {
			w := parquet.NewGenericWriter[dictRow](f, parquet.MaxRowsPerRowGroup(parquetRowGroup))
			for _, r := range rows {
				if _, err := w.Write([]dictRow{dictRow(r)}); err != nil {
					return err
				}
			}
			return w.Close()
		},
		"zstd (earlier gsim)": func(f *os.File) error {
			w := newParquetWriter[tokenRow](f)
			for _, r := range rows {
				if err := w.add(r); err != nil {
					return err
				}
			}
			return w.close()
		},
	}
	for name, write := range writers {
		path := filepath.Join(t.TempDir(), TokenMetricsParquet)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(write(f), f.Close()); err != nil {
			t.Fatal(err)
		}
		i := 0
		_, err = scanTokens(filepath.Join(filepath.Dir(path), TokenMetricsFile), func(m TokenMetric) error {
			if tokenRow(m) != rows[i] {
				t.Fatalf("%s: row %d read %+v, wrote %+v", name, i+1, m, rows[i])
			}
			i++
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if i != len(rows) {
			t.Fatalf("%s: read %d rows of %d", name, i, len(rows))
		}
	}
}

// ScanTokenColumns hands over every row once, in order, from CSV (gathered
// into blocks) and Parquet (row groups) alike, and a bad row deep in the
// table is reported at its own row number, not its block's.
func TestScanTokenColumns(t *testing.T) {
	n := parquetRowGroup + 20000
	rows := make([]TokenMetric, n)
	for i := range rows {
		rows[i] = TokenMetric{RequestID: int64(i / 4), TokenIndex: int64(i % 4), TokenTimeNs: int64(i) * 10}
		if i%4 > 0 {
			rows[i].TokenLatencyNs = 10
		}
	}
	bad := n - 5 // 1-based row n-4
	for _, form := range []string{"csv", "parquet"} {
		for _, broken := range []bool{false, true} {
			dir := t.TempDir()
			data := slices.Clone(rows)
			if broken {
				data[bad].TokenIndex = 7
			}
			switch form {
			case "csv":
				if err := WriteTokenMetrics(filepath.Join(dir, TokenMetricsFile), data); err != nil {
					t.Fatal(err)
				}
			case "parquet":
				trows := make([]tokenRow, len(data))
				for i, m := range data {
					trows[i] = tokenRow(m)
				}
				if err := os.WriteFile(filepath.Join(dir, TokenMetricsParquet), writeIntTokens(t, trows, 5000), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			i := 0
			requests := n/4 + 1 // the request count known up front, or not
			if broken {
				requests = 0
			}
			err := ScanTokenColumns(filepath.Join(dir, TokenMetricsFile), requests, func(c TokenColumns) error {
				for k := range c.RequestID {
					if got := (TokenMetric{c.RequestID[k], c.TokenIndex[k], c.TokenTimeNs[k], c.TokenLatencyNs[k]}); got != data[i] {
						t.Fatalf("%s: row %d read %+v, wrote %+v", form, i+1, got, data[i])
					}
					i++
				}
				return nil
			})
			var se *Error
			switch {
			case broken && (!errors.As(err, &se) || se.Row != bad+1 || se.Column != "token_index"):
				t.Fatalf("%s: a bad token_index in row %d gave %v", form, bad+1, err)
			case !broken && err != nil:
				t.Fatalf("%s: %v", form, err)
			case !broken && i != n:
				t.Fatalf("%s: %d rows read of %d", form, i, n)
			}
		}
	}
}
