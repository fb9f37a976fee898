package schema

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// The integer files (tokens, steps, workload traces) are parsed by hand: a
// real run has millions of token rows, and encoding/csv allocates a string per
// field. These files never hold quotes, so a comma split is exact.

const readBufSize = 1 << 20

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// checkHeader compares a header line with the expected columns and names the
// first missing, extra or misordered column.
func checkHeader(file string, line []byte, want []string) error {
	got := splitHeader(line)
	return compareColumns(file, got, want)
}

func splitHeader(line []byte) []string {
	line = bytes.TrimPrefix(line, utf8BOM)
	line = trimEOL(line)
	if len(line) == 0 {
		return nil
	}
	parts := strings.Split(string(line), ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

func compareColumns(file string, got, want []string) error {
	expect := "expected header " + strings.Join(want, ",")
	if len(got) == 0 {
		return rowErr(file, 0, "", "empty header (%s)", expect)
	}
	wantSet := make(map[string]bool, len(want))
	for _, w := range want {
		wantSet[w] = true
	}
	gotSet := make(map[string]bool, len(got))
	for _, g := range got {
		if gotSet[g] {
			return rowErr(file, 0, headerName(g), "column appears twice (%s)", expect)
		}
		gotSet[g] = true
		if !wantSet[g] {
			return rowErr(file, 0, headerName(g), "unexpected column (%s)", expect)
		}
	}
	for _, w := range want {
		if !gotSet[w] {
			return rowErr(file, 0, w, "missing column (%s)", expect)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			return rowErr(file, 0, headerName(got[i]), "column is at position %d, expected %s there (%s)", i+1, want[i], expect)
		}
	}
	return nil
}

// headerName is a header cell as an error shows it: a plain column name as
// written, anything else (a whole line of the wrong file) as an Excerpt.
func headerName(s string) string {
	if len(s) > 0 && len(s) <= 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == "" {
		return s
	}
	return Excerpt(s)
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// parseInts splits line into exactly len(dst) comma-separated base-10 int64
// fields. On failure it returns the index of the bad field and a message.
func parseInts(line []byte, dst []int64) (int, string) {
	n := len(dst)
	i := 0
	for f := 0; f < n; f++ {
		if i > len(line) {
			return f, fmt.Sprintf("row has %d fields, expected %d", f, n)
		}
		neg := false
		start := i
		if i < len(line) && line[i] == '-' {
			neg = true
			i++
		}
		var v uint64
		digits := 0
		for i < len(line) {
			c := line[i]
			if c < '0' || c > '9' {
				break
			}
			if v > (1<<63)/10 {
				return f, fmt.Sprintf("%s overflows int64", Excerpt(fieldAt(line, start)))
			}
			v = v*10 + uint64(c-'0')
			digits++
			i++
		}
		if digits == 0 || (i < len(line) && line[i] != ',') {
			fv := fieldAt(line, start)
			if fv == "" {
				return f, "empty value (expected an integer)"
			}
			return f, fmt.Sprintf("%s is not an integer (expected base-10 digits, no decimal point)", Excerpt(fv))
		}
		if v > 1<<63-1 && !(neg && v == 1<<63) {
			return f, fmt.Sprintf("%s overflows int64", Excerpt(fieldAt(line, start)))
		}
		if neg {
			dst[f] = -int64(v)
		} else {
			dst[f] = int64(v)
		}
		if f < n-1 {
			if i >= len(line) {
				return f + 1, fmt.Sprintf("row has %d fields, expected %d", f+1, n)
			}
			i++ // comma
		}
	}
	if i != len(line) {
		return n - 1, fmt.Sprintf("row has more than %d fields", n)
	}
	return -1, ""
}

func fieldAt(line []byte, start int) string {
	end := bytes.IndexByte(line[start:], ',')
	if end < 0 {
		return string(line[start:])
	}
	return string(line[start : start+end])
}

// scanInts streams an integer CSV: it checks the header against cols and
// calls fn for every data row with the parsed values (reused between calls).
// path names the CSV form; the Parquet or gzipped form is read when that is
// what the folder holds (TablePath).
func scanInts(path string, cols []string, fn func(row int, vals []int64) error) error {
	p, pq, err := TablePath(path)
	if err != nil {
		return err
	}
	return scanStored(p, pq, cols, fn)
}

// scanColumns reads a table already found by TablePath a block of rows at a
// time, column by column: data[c][i] is column c of row first+i (rows from
// 1; the slices are reused between calls). Parquet hands over its row
// groups; CSV is gathered into blocks.
func scanColumns(p string, pq bool, cols []string, fn func(first int, data [][]int64) error) error {
	if pq {
		return scanParquetColumns(p, cols, fn)
	}
	const block = 1 << 14
	data := make([][]int64, len(cols))
	for c := range data {
		data[c] = make([]int64, 0, block)
	}
	first := 1
	flush := func() error {
		if len(data[0]) == 0 {
			return nil
		}
		err := fn(first, data)
		first += len(data[0])
		for c := range data {
			data[c] = data[c][:0]
		}
		return err
	}
	err := scanStored(p, false, cols, func(row int, vals []int64) error {
		for c, v := range vals {
			data[c] = append(data[c], v)
		}
		if len(data[0]) == block {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// scanStored reads a table already found by TablePath.
func scanStored(p string, pq bool, cols []string, fn func(row int, vals []int64) error) error {
	if pq {
		return scanParquetInts(p, cols, fn)
	}
	// Open decompresses the gzipped form when given the plain name.
	f, err := Open(strings.TrimSuffix(p, GzipSuffix))
	if err != nil {
		return err
	}
	defer f.Close()
	return scanIntsReader(f, nameOf(f, p), cols, fn)
}

func scanIntsReader(r io.Reader, name string, cols []string, fn func(row int, vals []int64) error) error {
	br := bufio.NewReaderSize(r, readBufSize)
	header, err := readLine(br, name, 0)
	if err == io.EOF && len(header) == 0 {
		return rowErr(name, 0, "", "empty file (expected header %s)", strings.Join(cols, ","))
	}
	if err != nil && err != io.EOF {
		return err
	}
	if herr := checkHeader(name, header, cols); herr != nil {
		return herr
	}
	if err == io.EOF {
		return nil
	}
	vals := make([]int64, len(cols))
	for row := 1; ; row++ {
		line, err := readLine(br, name, row)
		if err != nil && err != io.EOF {
			return err
		}
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		line = trimEOL(line)
		if len(line) == 0 {
			return rowErr(name, row, "", "empty line (remove it; data rows must be contiguous)")
		}
		if bad, msg := parseInts(line, vals); bad >= 0 {
			return rowErr(name, row, cols[bad], "%s", msg)
		}
		if ferr := fn(row, vals); ferr != nil {
			return ferr
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine returns the next line including its newline; the slice is only
// valid until the next call.
func readLine(br *bufio.Reader, name string, row int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == nil || err == io.EOF:
		return line, err
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, rowErr(name, row, "", "line longer than %d bytes; is this the right file?", readBufSize)
	}
	// Rows before this one were read; the gzip checksum fails only at
	// the very end, so "after" is the honest place.
	switch row {
	case 0:
		return nil, &Error{File: name, Msg: "header: " + readFailure(err)}
	case 1:
		return nil, &Error{File: name, Msg: "after the header: " + readFailure(err)}
	}
	return nil, &Error{File: name, Msg: fmt.Sprintf("after row %d (line %d): %s", row-1, row, readFailure(err))}
}

// intWriter is the buffered append-only writer behind every integer CSV.
type intWriter struct {
	w      *bufio.Writer
	header []string
	wrote  bool
	err    error
}

func newIntWriter(w io.Writer, header []string) intWriter {
	return intWriter{w: bufio.NewWriterSize(w, 1<<16), header: header}
}

func (iw *intWriter) writeHeader() {
	if iw.wrote {
		return
	}
	iw.wrote = true
	_, iw.err = iw.w.WriteString(strings.Join(iw.header, ",") + "\n")
}

func (iw *intWriter) flush() error {
	iw.writeHeader()
	if iw.err != nil {
		return iw.err
	}
	iw.err = iw.w.Flush()
	return iw.err
}

func writeFileWith(path string, fn func(w io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// maxRowBytes bounds one integer row: a generous 24 bytes per column for the
// widest canonical file. rowBuf keeps at least this much free.
const maxRowBytes = 24 * 16

// rowBuf returns an empty slice over the writer's free buffer space, so a row
// is formatted straight into the output buffer instead of being built
// elsewhere and copied (the token file of a large simulation has millions of
// rows, and the copies were a fifth of its cost).
func (iw *intWriter) rowBuf() []byte {
	if iw.w.Available() < maxRowBytes {
		if iw.err = iw.w.Flush(); iw.err != nil {
			return nil
		}
	}
	return iw.w.AvailableBuffer()
}

// writeRow writes one row of integers (and the header before the first).
// Every integer CSV writer goes through it.
func (iw *intWriter) writeRow(vals ...int64) error {
	iw.writeHeader()
	if iw.err != nil {
		return iw.err
	}
	b := iw.rowBuf()
	if iw.err != nil {
		return iw.err
	}
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendInt(b, v)
	}
	b = append(b, '\n')
	return iw.putRow(b)
}

// putRow writes a row built on rowBuf's slice.
func (iw *intWriter) putRow(b []byte) error {
	_, iw.err = iw.w.Write(b)
	return iw.err
}

const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendInt is strconv.AppendInt(b, v, 10) without its intermediate buffer:
// it sizes the digits first and writes them in place, two at a time.
func appendInt(b []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		b = append(b, '-')
		u = uint64(-v) // also right for MinInt64: two's complement wraps to 2^63
	}
	n := 1
	for x := u; x >= 10; x /= 10 {
		n++
	}
	l := len(b)
	b = slices.Grow(b, n)[:l+n]
	i := l + n
	for u >= 100 {
		q := u / 100
		r := (u - q*100) * 2
		i -= 2
		b[i], b[i+1] = digitPairs[r], digitPairs[r+1]
		u = q
	}
	if u >= 10 {
		r := u * 2
		b[i-2], b[i-1] = digitPairs[r], digitPairs[r+1]
	} else {
		b[i-1] = byte('0' + u)
	}
	return b
}
