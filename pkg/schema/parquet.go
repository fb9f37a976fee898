package schema

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// The per-token and per-step files of a large run have hundreds of millions
// of rows, so they are written as Parquet: every column a required int64,
// delta encoded (token times and indexes grow by small steps) and Snappy
// compressed, by intParquetWriter. At 1M requests this is about 1.7 bytes per
// token row against 32 for CSV, and is read column by column
// (docs/schemas.md has the measurements). pandas, polars and DuckDB read it
// directly. The reader takes any Parquet file of those columns, whatever its
// encodings and codec (earlier gsim versions wrote zstd; pyarrow writes
// dictionaries).

// ParquetSuffix is the extension of the Parquet form of a canonical table.
const ParquetSuffix = ".parquet"

// Parquet names of the two large tables.
const (
	TokenMetricsParquet = "token_metrics" + ParquetSuffix
	StepMetricsParquet  = "step_metrics" + ParquetSuffix
)

// parquetRowGroup bounds the rows a writer buffers and a reader decodes at
// once: 128Ki rows of 9 int64 columns is 9 MiB.
const parquetRowGroup = 1 << 17

// tokenRow is a token table row as the writer's pipe carries it; its tags
// name the Parquet columns for parquet-go's generic reader and writer.
type tokenRow struct {
	RequestID      int64 `parquet:"request_id,delta"`
	TokenIndex     int64 `parquet:"token_index,delta"`
	TokenTimeNs    int64 `parquet:"token_time_ns,delta"`
	TokenLatencyNs int64 `parquet:"token_latency_ns,delta"`
}

// scanParquetInts streams a Parquet file whose columns are exactly cols, all
// required int64, calling fn for every row with the values (reused between
// calls). Rows are numbered from 1 as in the CSV form.
func scanParquetInts(path string, cols []string, fn func(row int, vals []int64) error) error {
	vals := make([]int64, len(cols))
	return scanParquetColumns(path, cols, func(first int, data [][]int64) error {
		for i := range data[0] {
			for c := range vals {
				vals[c] = data[c][i]
			}
			if err := fn(first+i, vals); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanParquetColumns streams the file a row group at a time: fn gets each
// column's values (data[c][i] is column c of row first+i; the slices are
// reused between calls).
func scanParquetColumns(path string, cols []string, fn func(first int, data [][]int64) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return &Error{File: path, Msg: fmt.Sprintf("not a readable Parquet file: %v (cut short or not Parquet; regenerate it)", err)}
	}
	if err := checkParquetColumns(path, pf.Schema(), cols); err != nil {
		return err
	}
	data := make([][]int64, len(cols))
	row := 0
	for _, rg := range pf.RowGroups() {
		n := int(rg.NumRows())
		for c, chunk := range rg.ColumnChunks() {
			if cap(data[c]) < n {
				data[c] = make([]int64, n)
			}
			data[c] = data[c][:n]
			if err := readInt64Chunk(chunk, data[c]); err != nil {
				return &Error{File: path, Row: row + 1, Column: cols[c], Msg: fmt.Sprintf("cannot decode: %v (the file is damaged; regenerate it)", err)}
			}
		}
		if n > 0 {
			if err := fn(row+1, data); err != nil {
				return err
			}
		}
		row += n
	}
	return nil
}

// readInt64Chunk decodes one column chunk into dst, which must hold exactly
// its values.
func readInt64Chunk(chunk parquet.ColumnChunk, dst []int64) error {
	pages := chunk.Pages()
	defer pages.Close()
	off := 0
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if p.NumNulls() > 0 {
			parquet.Release(p)
			return errors.New("null values (expected every value present)")
		}
		if d := p.Dictionary(); d != nil {
			// Dictionary encoded: look the indexes up here, a slice index
			// each, rather than through parquet-go's generic values.
			n, err := lookupInt64(d, p, dst[off:])
			parquet.Release(p)
			if err != nil {
				return err
			}
			off += n
			continue
		}
		r, ok := p.Values().(parquet.Int64Reader)
		if !ok {
			parquet.Release(p)
			return errors.New("not an int64 column")
		}
		for {
			if off == len(dst) {
				// The row group is full: the page must hold nothing more.
				var one [1]int64
				if n, _ := r.ReadInt64s(one[:]); n > 0 {
					parquet.Release(p)
					return errors.New("more values than rows")
				}
				break
			}
			n, err := r.ReadInt64s(dst[off:])
			off += n
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(p)
				return err
			}
		}
		parquet.Release(p)
	}
	if off != len(dst) {
		return fmt.Errorf("%d values for %d rows", off, len(dst))
	}
	return nil
}

// lookupInt64 writes the values of the dictionary-encoded page p into dst
// and returns how many.
func lookupInt64(d parquet.Dictionary, p parquet.Page, dst []int64) (int, error) {
	dp := d.Page()
	if dp.Type().Kind() != parquet.Int64 {
		return 0, errors.New("not an int64 column")
	}
	dv, iv := dp.Data(), p.Data()
	dict, idx := dv.Int64(), iv.Int32()
	if len(idx) > len(dst) {
		return 0, errors.New("more values than rows")
	}
	for i, j := range idx {
		if uint(j) >= uint(len(dict)) {
			return 0, fmt.Errorf("dictionary index %d out of range (%d entries)", j, len(dict))
		}
		dst[i] = dict[j]
	}
	return len(idx), nil
}

// checkParquetColumns names the first missing, extra, misordered or
// non-integer column, as checkHeader does for a CSV header.
func checkParquetColumns(path string, s *parquet.Schema, want []string) error {
	var got []string
	for _, f := range s.Fields() {
		got = append(got, f.Name())
	}
	if err := compareColumns(path, got, want); err != nil {
		return err
	}
	for _, f := range s.Fields() {
		if !f.Leaf() || f.Type().Kind() != parquet.Int64 || f.Optional() || f.Repeated() {
			return &Error{File: path, Column: f.Name(), Msg: fmt.Sprintf("column type %s (expected required int64: %s)", f.Type(), strings.Join(want, ","))}
		}
	}
	return nil
}

// TableRows is the row count of a table stored as Parquet (from its
// footer, without reading the rows), or -1 when it is stored as CSV or
// cannot be opened.
func TableRows(csvPath string) int64 {
	p, pq, err := TablePath(csvPath)
	if err != nil || !pq {
		return -1
	}
	f, err := os.Open(p)
	if err != nil {
		return -1
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return -1
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return -1
	}
	return pf.NumRows()
}
