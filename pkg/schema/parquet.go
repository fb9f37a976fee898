package schema

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// The per-token and per-step files of a large run have hundreds of millions
// of rows, so they are written as Parquet: every column is an int64, delta
// encoded (token times and indexes grow by small steps) and zstd compressed.
// At 1M requests this is about 1.4 bytes per token row against 32 for CSV,
// writes as fast as the CSV and is read column by column (docs/schemas.md
// has the measurements). pandas, polars and DuckDB read it directly.

// ParquetSuffix is the extension of the Parquet form of a canonical table.
const ParquetSuffix = ".parquet"

// Parquet names of the two large tables.
const (
	TokenMetricsParquet = "token_metrics" + ParquetSuffix
	StepMetricsParquet  = "step_metrics" + ParquetSuffix
)

// parquetRowGroup bounds the rows a writer buffers and a reader decodes at
// once: 512Ki rows of 9 int64 columns is 36 MiB at most.
const parquetRowGroup = 1 << 17

// tokenRow and stepRow are the Parquet layouts; field order is column order.
type tokenRow struct {
	RequestID      int64 `parquet:"request_id,delta"`
	TokenIndex     int64 `parquet:"token_index,delta"`
	TokenTimeNs    int64 `parquet:"token_time_ns,delta"`
	TokenLatencyNs int64 `parquet:"token_latency_ns,delta"`
}

type stepRow struct {
	Step               int64 `parquet:"step,delta"`
	StartNs            int64 `parquet:"start_ns,delta"`
	EndNs              int64 `parquet:"end_ns,delta"`
	NumPrefillTokens   int64 `parquet:"num_prefill_tokens,delta"`
	NumDecodeTokens    int64 `parquet:"num_decode_tokens,delta"`
	NumRequests        int64 `parquet:"num_requests,delta"`
	NumPrefillRequests int64 `parquet:"num_prefill_requests,delta"`
	NumDecodeRequests  int64 `parquet:"num_decode_requests,delta"`
	NumContextTokens   int64 `parquet:"num_context_tokens,delta"`
}

// zstdCodec is Parquet's ZSTD codec with one encoder kept for the writer's
// life. parquet-go's own codec pools its encoders in a sync.Pool, which every
// garbage collection empties, and each new encoder allocates its match
// history again: writing a 1M-request token table churned through 160 MB of
// it per 3M rows, and that garbage set the stage's peak memory.
type zstdCodec struct {
	mu  sync.Mutex
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func (c *zstdCodec) String() string { return "ZSTD" }

func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc == nil {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, err
		}
		c.enc = e
	}
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dec == nil {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		c.dec = d
	}
	return c.dec.DecodeAll(src, dst[:0])
}

// parquetWriter batches rows into a Parquet file written to w.
type parquetWriter[T any] struct {
	pw  *parquet.GenericWriter[T]
	buf []T
	err error
}

func newParquetWriter[T any](w io.Writer) *parquetWriter[T] {
	return &parquetWriter[T]{
		pw: parquet.NewGenericWriter[T](w,
			parquet.Compression(&zstdCodec{}),
			parquet.MaxRowsPerRowGroup(parquetRowGroup),
			parquet.PageBufferSize(1<<18),
			parquet.CreatedBy("gsim", "", ""),
		),
		buf: make([]T, 0, 8192),
	}
}

func (p *parquetWriter[T]) add(r T) error {
	if p.err != nil {
		return p.err
	}
	p.buf = append(p.buf, r)
	if len(p.buf) == cap(p.buf) {
		p.flushRows()
	}
	return p.err
}

func (p *parquetWriter[T]) flushRows() {
	if len(p.buf) == 0 || p.err != nil {
		return
	}
	_, p.err = p.pw.Write(p.buf)
	p.buf = p.buf[:0]
}

// close writes the buffered rows and the footer (a file with no rows still
// gets its schema).
func (p *parquetWriter[T]) close() error {
	p.flushRows()
	if p.err != nil {
		return p.err
	}
	p.err = p.pw.Close()
	return p.err
}

// scanParquetInts streams a Parquet file whose columns are exactly cols, all
// required int64, calling fn for every row with the values (reused between
// calls). Rows are numbered from 1 as in the CSV form.
func scanParquetInts(path string, cols []string, fn func(row int, vals []int64) error) error {
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
	vals := make([]int64, len(cols))
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
		for i := 0; i < n; i++ {
			row++
			for c := range vals {
				vals[c] = data[c][i]
			}
			if err := fn(row, vals); err != nil {
				return err
			}
		}
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
