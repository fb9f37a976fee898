package schema

import (
	"encoding/binary"
	"errors"
	"io"
	"math"

	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// intParquetWriter writes a Parquet file whose columns are all required
// int64, column by column, for the run tables that have hundreds of millions
// of rows. Every column is DELTA_BINARY_PACKED (ids, indexes and times move
// by small steps, and a token's time and gap repeat within a step) and every
// page Snappy compressed: at 1M requests that is 1.7 bytes a token row
// against 1.5 with zstd, written in half the time (docs/schemas.md has the
// measurements). A general Parquet writer would also move every value
// through generic rows and page statistics; this one encodes straight from
// the column buffers.
//
// The output is standard Parquet (format version 2 metadata, data pages v1,
// column statistics), read by parquet-go, pandas/pyarrow, polars and DuckDB.
// The same rows always give the same bytes.
type intParquetWriter struct {
	w      io.Writer
	cols   []string
	buf    [][]int64 // the row group being filled, by column
	n      int       // rows in buf
	off    int64     // bytes written so far
	groups []format.RowGroup
	rows   int64
	err    error

	page   []byte // encoded page
	zbuf   []byte // compressed page
	header []byte
	tenc   *thrift.Encoder
}

// intPageRows is the most values in one data page.
const intPageRows = 1 << 15

type headerWriter struct{ b *[]byte }

func (h headerWriter) Write(p []byte) (int, error) {
	*h.b = append(*h.b, p...)
	return len(p), nil
}

func newIntParquetWriter(w io.Writer, cols []string) *intParquetWriter {
	p := &intParquetWriter{w: w, cols: cols}
	p.tenc = thrift.NewEncoder(new(thrift.CompactProtocol).NewWriter(headerWriter{&p.header}))
	p.buf = make([][]int64, len(cols))
	for c := range p.buf {
		p.buf[c] = make([]int64, parquetRowGroup)
	}
	p.write([]byte("PAR1"))
	return p
}

func (p *intParquetWriter) write(b []byte) {
	if p.err != nil {
		return
	}
	n, err := p.w.Write(b)
	p.off += int64(n)
	p.err = err
}

// full reports whether the row group is full; flush it before adding more.
func (p *intParquetWriter) full() bool { return p.n == parquetRowGroup }

// flush writes the buffered rows as one row group.
func (p *intParquetWriter) flush() error {
	if p.n == 0 || p.err != nil {
		return p.err
	}
	rg := format.RowGroup{NumRows: int64(p.n), FileOffset: p.off, Ordinal: int16(min(len(p.groups), math.MaxInt16))}
	for c, name := range p.cols {
		cc, err := p.writeChunk(name, p.buf[c][:p.n])
		if err != nil {
			p.err = err
			return err
		}
		rg.TotalByteSize += cc.MetaData.TotalUncompressedSize
		rg.TotalCompressedSize += cc.MetaData.TotalCompressedSize
		rg.Columns = append(rg.Columns, cc)
	}
	p.groups = append(p.groups, rg)
	p.rows += int64(p.n)
	p.n = 0
	return p.err
}

// writeChunk writes one column of the row group.
func (p *intParquetWriter) writeChunk(name string, vals []int64) (format.ColumnChunk, error) {
	md := format.ColumnMetaData{
		Type:           format.Int64,
		Encoding:       []format.Encoding{format.DeltaBinaryPacked},
		PathInSchema:   []string{name},
		Codec:          format.Snappy,
		NumValues:      int64(len(vals)),
		DataPageOffset: p.off,
	}
	lo, hi := vals[0], vals[0]
	for i := 0; i < len(vals); i += intPageRows {
		page := vals[i:min(len(vals), i+intPageRows)]
		// The range page by page, while the page is in cache for encoding.
		l, h := minMax(page)
		lo, hi = min(lo, l), max(hi, h)
		p.page, _ = (&delta.BinaryPackedEncoding{}).EncodeInt64(p.page[:0], page)
		if err := p.pageOut(&md, format.PageHeader{Type: format.DataPage,
			DataPageHeader: thrift.New(format.DataPageHeader{NumValues: int32(len(page)), Encoding: format.DeltaBinaryPacked,
				DefinitionLevelEncoding: format.RLE, RepetitionLevelEncoding: format.RLE})}); err != nil {
			return format.ColumnChunk{}, err
		}
	}
	md.Statistics = format.Statistics{
		MinValue: binary.LittleEndian.AppendUint64(nil, uint64(lo)),
		MaxValue: binary.LittleEndian.AppendUint64(nil, uint64(hi)),
	}
	return format.ColumnChunk{FileOffset: md.DataPageOffset, MetaData: md}, nil
}

// minMax is the smallest and largest of vals (not empty), four lanes at a
// time.
func minMax(vals []int64) (lo, hi int64) {
	l := [4]int64{vals[0], vals[0], vals[0], vals[0]}
	h := l
	i := 0
	for ; i+4 <= len(vals); i += 4 {
		v := vals[i : i+4 : i+4]
		l[0], h[0] = min(l[0], v[0]), max(h[0], v[0])
		l[1], h[1] = min(l[1], v[1]), max(h[1], v[1])
		l[2], h[2] = min(l[2], v[2]), max(h[2], v[2])
		l[3], h[3] = min(l[3], v[3]), max(h[3], v[3])
	}
	for ; i < len(vals); i++ {
		l[0], h[0] = min(l[0], vals[i]), max(h[0], vals[i])
	}
	return min(l[0], l[1], l[2], l[3]), max(h[0], h[1], h[2], h[3])
}

// pageOut writes p.page, Snappy compressed, under its header.
func (p *intParquetWriter) pageOut(md *format.ColumnMetaData, h format.PageHeader) error {
	if n := s2.MaxEncodedLen(len(p.page)); cap(p.zbuf) < n {
		p.zbuf = make([]byte, n)
	}
	p.zbuf = s2.EncodeSnappy(p.zbuf[:cap(p.zbuf)], p.page)
	h.UncompressedPageSize = int32(len(p.page))
	h.CompressedPageSize = int32(len(p.zbuf))
	p.header = p.header[:0]
	if err := p.tenc.Encode(&h); err != nil {
		return err
	}
	md.TotalUncompressedSize += int64(len(p.header) + len(p.page))
	md.TotalCompressedSize += int64(len(p.header) + len(p.zbuf))
	p.write(p.header)
	p.write(p.zbuf)
	return p.err
}

// addTokens appends token rows, skipping the pipe's request markers.
func (p *intParquetWriter) addTokens(rows []TokenMetric) error {
	for len(rows) > 0 && p.err == nil {
		if p.full() {
			p.flush()
		}
		c0, c1, c2, c3 := p.buf[0], p.buf[1], p.buf[2], p.buf[3]
		n, k := p.n, 0
		for ; k < len(rows) && n < parquetRowGroup; k++ {
			r := &rows[k]
			if r.TokenIndex == markerIndex {
				continue
			}
			c0[n], c1[n], c2[n], c3[n] = r.RequestID, r.TokenIndex, r.TokenTimeNs, r.TokenLatencyNs
			n++
		}
		p.n = n
		rows = rows[k:]
	}
	return p.err
}

// addStep appends one step row.
func (p *intParquetWriter) addStep(m *StepMetric) error {
	if p.full() {
		p.flush()
	}
	if p.err != nil {
		return p.err
	}
	i, b := p.n, p.buf
	b[0][i], b[1][i], b[2][i], b[3][i], b[4][i] = m.Step, m.StartNs, m.EndNs, m.NumPrefillTokens, m.NumDecodeTokens
	b[5][i], b[6][i], b[7][i], b[8][i] = m.NumRequests, m.NumPrefillRequests, m.NumDecodeRequests, m.NumContextTokens
	p.n++
	return nil
}

// close writes the buffered rows and the footer; a file with no rows still
// gets its schema.
func (p *intParquetWriter) close() error {
	if err := p.flush(); err != nil {
		return err
	}
	schema := []format.SchemaElement{{Name: "schema", NumChildren: thrift.New(int32(len(p.cols)))}}
	orders := make([]format.ColumnOrder, len(p.cols))
	for i, name := range p.cols {
		schema = append(schema, format.SchemaElement{Type: thrift.New(format.Int64), RepetitionType: thrift.New(format.Required), Name: name,
			ConvertedType: thrift.New(deprecated.Int64), LogicalType: format.LogicalType{Value: &format.IntType{BitWidth: 64, IsSigned: true}}})
		orders[i] = format.ColumnOrder{Value: &format.TypeDefinedOrder{}}
	}
	fm := format.FileMetaData{Version: 2, Schema: schema, NumRows: p.rows, RowGroups: p.groups,
		CreatedBy: "gsim", ColumnOrders: orders}
	p.header = p.header[:0]
	if err := p.tenc.Encode(&fm); err != nil {
		return err
	}
	if len(p.header) > math.MaxUint32 {
		return errors.New("parquet footer too large")
	}
	p.write(p.header)
	p.write(binary.LittleEndian.AppendUint32(nil, uint32(len(p.header))))
	p.write([]byte("PAR1"))
	return p.err
}
