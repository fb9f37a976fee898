package schema

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// RequestMetricsWriter streams request_metrics.csv. The error columns are
// written only when the writer is told before the first row that some request
// failed (IncludeErrorColumns), because a streamed header cannot be revised.
type RequestMetricsWriter struct {
	w         *bufio.Writer
	buf       []byte
	errorCols bool
	wrote     bool
	err       error
}

// NewRequestMetricsWriter returns a buffered writer; call Flush at the end.
func NewRequestMetricsWriter(w io.Writer) *RequestMetricsWriter {
	return &RequestMetricsWriter{w: bufio.NewWriterSize(w, 1<<16), buf: make([]byte, 0, 256)}
}

// IncludeErrorColumns adds error_type and error_message to the header. Call
// it before the first Write; a failed row written without it is an error.
func (rw *RequestMetricsWriter) IncludeErrorColumns() *RequestMetricsWriter {
	if !rw.wrote {
		rw.errorCols = true
	}
	return rw
}

func (rw *RequestMetricsWriter) header() {
	if rw.wrote {
		return
	}
	rw.wrote = true
	cols := RequestMetricsColumns
	if rw.errorCols {
		cols = append(slices.Clone(cols), RequestErrorColumns...)
	}
	_, rw.err = rw.w.WriteString(strings.Join(cols, ",") + "\n")
}

// Write appends one row.
func (rw *RequestMetricsWriter) Write(m RequestMetric) error {
	rw.header()
	if rw.err != nil {
		return rw.err
	}
	if m.Status == StatusFailed && !rw.errorCols {
		return fmt.Errorf("request %d failed but the writer has no error columns; call IncludeErrorColumns before writing", m.RequestID)
	}
	b := rw.buf[:0]
	for _, v := range [...]int64{m.RequestID, m.ArrivalTimeNs, m.FirstTokenTimeNs, m.TTFTNs, m.CompletionTimeNs,
		m.NumPrefillTokens, m.NumDecodeTokens, m.NumDecodeTokensActual} {
		b = strconv.AppendInt(b, v, 10)
		b = append(b, ',')
	}
	b = appendCSVField(b, m.Status)
	if rw.errorCols {
		b = append(b, ',')
		b = appendCSVField(b, m.ErrorType)
		b = append(b, ',')
		b = appendCSVField(b, m.ErrorMessage)
	}
	b = append(b, '\n')
	rw.buf = b
	_, rw.err = rw.w.Write(b)
	return rw.err
}

// Flush writes the header if nothing was written and flushes the buffer.
func (rw *RequestMetricsWriter) Flush() error {
	rw.header()
	if rw.err != nil {
		return rw.err
	}
	rw.err = rw.w.Flush()
	return rw.err
}

// appendCSVField quotes s the way encoding/csv would read it back.
func appendCSVField(b []byte, s string) []byte {
	if !strings.ContainsAny(s, ",\"\r\n") && (s == "" || (s[0] != ' ' && s[0] != '\t')) {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// WriteRequestMetrics writes rows to path, with the error columns when any
// row failed.
func WriteRequestMetrics(path string, rows []RequestMetric) error {
	return writeFileWith(path, func(w io.Writer) error {
		rw := NewRequestMetricsWriter(w)
		for _, r := range rows {
			if r.Status == StatusFailed {
				rw.IncludeErrorColumns()
				break
			}
		}
		for _, r := range rows {
			if err := rw.Write(r); err != nil {
				return err
			}
		}
		return rw.Flush()
	})
}

// ReadRequestMetrics reads and checks request_metrics.csv on its own (the
// token cross-check is ReadRun's). Rules, per row:
//   - integers parse; request ids unique;
//   - status is ok or failed; failed rows need the error columns and a
//     non-empty error_type;
//   - ok rows: every time >= 0, arrival <= first token <= completion,
//     ttft_ns = first_token_time_ns - arrival_time_ns, at least one token;
//   - failed rows may carry -1 in first_token_time_ns, ttft_ns and
//     completion_time_ns for events that never happened.
func ReadRequestMetrics(path string) ([]RequestMetric, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readRequestMetrics(f, nameOf(f, path))
}

// ScanRequestMetrics streams request_metrics.csv through fn with
// ReadRequestMetrics' checks, holding one row at a time (plus the ids seen,
// for uniqueness).
func ScanRequestMetrics(path string, fn func(RequestMetric) error) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return scanRequestMetrics(f, nameOf(f, path), 0, fn)
}

func readRequestMetrics(r io.Reader, name string) ([]RequestMetric, error) {
	var rows []RequestMetric
	var hint int64
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			hint = st.Size()
			rows = make([]RequestMetric, 0, hint/48+1)
		}
	}
	err := scanRequestMetrics(r, name, hint, func(m RequestMetric) error {
		rows = append(rows, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func scanRequestMetrics(r io.Reader, name string, sizeHint int64, fn func(RequestMetric) error) error {
	br := bufio.NewReaderSize(r, readBufSize)
	hline, err := readLine(br, name, 0)
	if err == io.EOF && len(hline) == 0 {
		return rowErr(name, 0, "", "empty file (expected header %s)", strings.Join(RequestMetricsColumns, ","))
	}
	if err != nil && err != io.EOF {
		return err
	}
	got := splitHeader(hline)
	want := RequestMetricsColumns
	if slices.Contains(got, RequestErrorColumns[0]) || slices.Contains(got, RequestErrorColumns[1]) {
		want = append(slices.Clone(want), RequestErrorColumns...)
	}
	if err := compareColumns(name, got, want); err != nil {
		return err
	}
	errorCols := len(want) > len(RequestMetricsColumns)
	var ids idSet
	if sizeHint > 0 {
		ids.reserve(int(min(sizeHint/48+1, 1<<24)))
	}
	fields := make([][]byte, len(want)+1)
	var rec []byte
	for row := 1; err != io.EOF; row++ {
		var line []byte
		line, err = readLine(br, name, row)
		if err != nil && err != io.EOF {
			return err
		}
		if err == io.EOF && len(line) == 0 {
			break
		}
		var n int
		if bytes.IndexByte(line, '"') < 0 {
			line = trimEOL(line)
			if len(line) == 0 {
				return rowErr(name, row, "", "empty line (remove it; data rows must be contiguous)")
			}
			n = splitComma(line, fields)
		} else {
			// A quoted error message may hold commas and newlines: gather
			// the whole record and let encoding/csv unquote it.
			rec = append(rec[:0], line...)
			for bytes.Count(rec, []byte{'"'})%2 == 1 && err == nil {
				line, err = readLine(br, name, row)
				if err != nil && err != io.EOF {
					return err
				}
				rec = append(rec, line...)
			}
			cr := csv.NewReader(bytes.NewReader(rec))
			cr.FieldsPerRecord = -1
			strs, cerr := cr.Read()
			if cerr != nil {
				var pe *csv.ParseError
				if errors.As(cerr, &pe) {
					cerr = pe.Err
				}
				return rowErr(name, row, "", "malformed CSV: %v", cerr)
			}
			n = len(strs)
			for i := 0; i < len(strs) && i < len(fields); i++ {
				fields[i] = []byte(strs[i])
			}
		}
		if n != len(want) {
			return rowErr(name, row, "", "row has %d fields, expected %d (%s)", n, len(want), strings.Join(want, ","))
		}
		var vals [8]int64
		for i := range vals {
			v, ok := parseInt(fields[i])
			if !ok {
				return rowErr(name, row, want[i], "%s is not an integer (expected base-10 digits, no decimal point)", Excerpt(string(fields[i])))
			}
			vals[i] = v
		}
		m := RequestMetric{RequestID: vals[0], ArrivalTimeNs: vals[1], FirstTokenTimeNs: vals[2], TTFTNs: vals[3],
			CompletionTimeNs: vals[4], NumPrefillTokens: vals[5], NumDecodeTokens: vals[6], NumDecodeTokensActual: vals[7]}
		switch string(fields[8]) {
		case StatusOK:
			m.Status = StatusOK
		case StatusFailed:
			m.Status = StatusFailed
		default:
			m.Status = string(fields[8])
		}
		if errorCols {
			m.ErrorType, m.ErrorMessage = string(fields[9]), string(fields[10])
		}
		if err := checkRequestRow(name, row, &m, errorCols); err != nil {
			return err
		}
		if prev := ids.add(m.RequestID, row); prev > 0 {
			return rowErr(name, row, "request_id", "%d already appeared in row %d (expected unique ids)", m.RequestID, prev)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// splitComma cuts line at commas into dst and returns the field count, which
// may exceed len(dst) (the extra fields are not stored).
func splitComma(line []byte, dst [][]byte) int {
	n := 0
	for {
		i := bytes.IndexByte(line, ',')
		if i < 0 {
			if n < len(dst) {
				dst[n] = line
			}
			return n + 1
		}
		if n < len(dst) {
			dst[n] = line[:i]
		}
		n++
		line = line[i+1:]
	}
}

// parseInt parses a base-10 int64 without allocating.
func parseInt(b []byte) (int64, bool) {
	var one [1]int64
	if bad, _ := parseInts(b, one[:]); bad >= 0 {
		return 0, false
	}
	return one[0], true
}

// idSet remembers the row of each request id: a slice for the usual dense
// ids 0..n-1, a map for anything else.
type idSet struct {
	dense  []int32
	sparse map[int64]int
}

// reserve sizes the set for ids 0..n-1.
func (s *idSet) reserve(n int) {
	if n > len(s.dense) {
		s.dense = slices.Grow(s.dense, n-len(s.dense))
		s.dense = s.dense[:cap(s.dense)]
	}
}

func (s *idSet) add(id int64, row int) (prevRow int) {
	if id < int64(len(s.dense)) || id < 1<<16 || id < 4*int64(len(s.dense)) {
		if id >= int64(len(s.dense)) {
			s.dense = slices.Grow(s.dense, int(id)+1-len(s.dense))
			s.dense = s.dense[:cap(s.dense)]
		}
		if p := s.dense[id]; p > 0 {
			return int(p)
		}
		s.dense[id] = int32(row)
		return 0
	}
	if s.sparse == nil {
		s.sparse = map[int64]int{}
	}
	if p, ok := s.sparse[id]; ok {
		return p
	}
	s.sparse[id] = row
	return 0
}

func checkRequestRow(name string, row int, m *RequestMetric, errorCols bool) error {
	if m.RequestID < 0 {
		return rowErr(name, row, "request_id", "%d is negative (expected >= 0)", m.RequestID)
	}
	if m.ArrivalTimeNs < 0 {
		return rowErr(name, row, "arrival_time_ns", "%d is negative (expected ns since run start, >= 0)", m.ArrivalTimeNs)
	}
	for _, c := range []struct {
		col string
		v   int64
	}{{"num_prefill_tokens", m.NumPrefillTokens}, {"num_decode_tokens", m.NumDecodeTokens}, {"num_decode_tokens_actual", m.NumDecodeTokensActual}} {
		if c.v < 0 {
			return rowErr(name, row, c.col, "%d is negative (expected >= 0)", c.v)
		}
	}
	switch m.Status {
	case StatusOK:
		if m.NumDecodeTokensActual < 1 {
			return rowErr(name, row, "num_decode_tokens_actual", "%d for an ok request (expected >= 1: an ok request produced its first token)", m.NumDecodeTokensActual)
		}
		if m.FirstTokenTimeNs < m.ArrivalTimeNs {
			return rowErr(name, row, "first_token_time_ns", "%d is before arrival_time_ns %d (expected first token after arrival)", m.FirstTokenTimeNs, m.ArrivalTimeNs)
		}
		if m.CompletionTimeNs < m.FirstTokenTimeNs {
			return rowErr(name, row, "completion_time_ns", "%d is before first_token_time_ns %d (expected completion at or after the first token)", m.CompletionTimeNs, m.FirstTokenTimeNs)
		}
		if want := m.FirstTokenTimeNs - m.ArrivalTimeNs; m.TTFTNs != want {
			return rowErr(name, row, "ttft_ns", "%d (expected %d = first_token_time_ns - arrival_time_ns)", m.TTFTNs, want)
		}
	case StatusFailed:
		if !errorCols {
			return rowErr(name, row, "status", "request failed but the file has no error_type,error_message columns (expected them after status)")
		}
		if m.ErrorType == "" {
			return rowErr(name, row, "error_type", "empty for a failed request (expected the kind of failure, e.g. timeout)")
		}
		for _, c := range []struct {
			col string
			v   int64
		}{{"first_token_time_ns", m.FirstTokenTimeNs}, {"ttft_ns", m.TTFTNs}, {"completion_time_ns", m.CompletionTimeNs}} {
			if c.v < -1 {
				return rowErr(name, row, c.col, "%d (expected >= 0, or -1 when it never happened)", c.v)
			}
		}
		if m.FirstTokenTimeNs >= 0 && m.TTFTNs != m.FirstTokenTimeNs-m.ArrivalTimeNs {
			return rowErr(name, row, "ttft_ns", "%d (expected %d = first_token_time_ns - arrival_time_ns)", m.TTFTNs, m.FirstTokenTimeNs-m.ArrivalTimeNs)
		}
	default:
		return rowErr(name, row, "status", "%s (expected ok or failed)", Excerpt(m.Status))
	}
	return nil
}
