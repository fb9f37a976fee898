package schema

import (
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// The writer earlier gsim versions used for the token and step tables
// (parquet-go's generic writer, zstd): kept in the tests to check that
// those runs still read, and as the baseline of BenchmarkTokenFormats.

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
