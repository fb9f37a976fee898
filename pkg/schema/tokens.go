package schema

import (
	"io"
	"math"
	"os"
	"slices"
)

// TokenMetricsWriter streams token_metrics.csv. The header is written with
// the first row (or by Flush for an empty file).
type TokenMetricsWriter struct{ iw intWriter }

// NewTokenMetricsWriter returns a buffered writer; call Flush at the end.
func NewTokenMetricsWriter(w io.Writer) *TokenMetricsWriter {
	return &TokenMetricsWriter{iw: newIntWriter(w, TokenMetricsColumns)}
}

// Write appends one row.
func (t *TokenMetricsWriter) Write(m TokenMetric) error {
	return t.iw.writeRow(m.RequestID, m.TokenIndex, m.TokenTimeNs, m.TokenLatencyNs)
}

// Flush writes the header if nothing was written and flushes the buffer.
func (t *TokenMetricsWriter) Flush() error { return t.iw.flush() }

// WriteTokenMetrics writes rows to path.
func WriteTokenMetrics(path string, rows []TokenMetric) error {
	return writeFileWith(path, func(w io.Writer) error {
		tw := NewTokenMetricsWriter(w)
		for _, r := range rows {
			if err := tw.Write(r); err != nil {
				return err
			}
		}
		return tw.Flush()
	})
}

// tokenState is what the token file says about one request so far.
type tokenState struct {
	first    int64 // token 0 time
	last     int64 // latest token time
	firstRow int64 // row of token 0, for cross-check messages
	count    int32 // tokens seen; also the next expected token_index
	listed   bool  // request_metrics.csv has the request (set by the cross-check)
}

// tokenSeq checks token rows as they stream by: per request, token_index runs
// 0,1,2,... in file order (requests may interleave), times never go back, and
// latencies are the gaps. Simulators interleave every request of an iteration,
// so per-row map lookups dominated validation; request ids are almost always
// small dense integers, so they index a slice, and only large ids go to a map.
type tokenSeq struct {
	file   string
	dense  []tokenState // by request id, for ids below denseIDs
	sparse map[int64]*tokenState
}

// denseIDs bounds the slice (32 bytes an id, so at most 64 MiB, reached only
// by runs with millions of requests, whose token files are far larger).
const denseIDs = 1 << 21

func newTokenSeq(file string) *tokenSeq {
	return &tokenSeq{file: file, sparse: map[int64]*tokenState{}}
}

// reserve sizes the dense states for n requests with ids 0..n-1.
func (s *tokenSeq) reserve(n int) {
	if n > 0 && n <= denseIDs && cap(s.dense) < n {
		s.dense = slices.Grow(s.dense, n-len(s.dense))
	}
}

func (s *tokenSeq) state(id int64) *tokenState {
	if id < denseIDs {
		if id >= int64(len(s.dense)) {
			s.grow(id)
		}
		return &s.dense[id]
	}
	st := s.sparse[id]
	if st == nil {
		st = &tokenState{}
		s.sparse[id] = st
	}
	return st
}

// grow extends the dense states to hold id, by half again at least, so
// that a reader meeting ids one by one copies them a few times in all, not
// once per id.
func (s *tokenSeq) grow(id int64) {
	if int(id) >= cap(s.dense) {
		s.dense = slices.Grow(s.dense, max(int(id)+1, min(cap(s.dense)+cap(s.dense)/2, denseIDs))-len(s.dense))
	}
	s.dense = s.dense[:id+1]
}

func (s *tokenSeq) add(row int, m TokenMetric) error {
	if err := s.checkSigns(row, &m); err != nil {
		return err
	}
	return s.advance(s.state(m.RequestID), row, &m)
}

// checkSigns rejects negative ids, indexes and times.
func (s *tokenSeq) checkSigns(row int, m *TokenMetric) error {
	switch {
	case m.RequestID < 0:
		return rowErr(s.file, row, "request_id", "%d is negative (expected a request id >= 0)", m.RequestID)
	case m.TokenIndex < 0:
		return rowErr(s.file, row, "token_index", "%d is negative (expected >= 0)", m.TokenIndex)
	case m.TokenTimeNs < 0:
		return rowErr(s.file, row, "token_time_ns", "%d is negative (expected ns since run start, >= 0)", m.TokenTimeNs)
	}
	return nil
}

// advance checks m against its request's state st and records it.
func (s *tokenSeq) advance(st *tokenState, row int, m *TokenMetric) error {
	if m.TokenIndex != int64(st.count) {
		return rowErr(s.file, row, "token_index", "%d for request %d (expected %d: indexes run 0,1,2,... per request in file order)",
			m.TokenIndex, m.RequestID, st.count)
	}
	if st.count == math.MaxInt32 {
		return rowErr(s.file, row, "token_index", "request %d has more than %d tokens", m.RequestID, math.MaxInt32)
	}
	if st.count == 0 {
		if m.TokenLatencyNs != 0 {
			return rowErr(s.file, row, "token_latency_ns", "%d for token 0 of request %d (expected 0)", m.TokenLatencyNs, m.RequestID)
		}
		st.first, st.last, st.firstRow = m.TokenTimeNs, m.TokenTimeNs, int64(row)
	} else {
		if m.TokenTimeNs < st.last {
			return rowErr(s.file, row, "token_time_ns", "%d is before the previous token of request %d at %d (expected non-decreasing times)",
				m.TokenTimeNs, m.RequestID, st.last)
		}
		if want := m.TokenTimeNs - st.last; m.TokenLatencyNs != want {
			return rowErr(s.file, row, "token_latency_ns", "%d for request %d token %d (expected %d = token_time_ns - previous token's)",
				m.TokenLatencyNs, m.RequestID, m.TokenIndex, want)
		}
		st.last = m.TokenTimeNs
	}
	st.count++
	return nil
}

// get returns the state of id, or nil when the file has no token of it.
func (s *tokenSeq) get(id int64) *tokenState {
	if id >= 0 && id < int64(len(s.dense)) {
		if st := &s.dense[id]; st.count > 0 {
			return st
		}
		return nil
	}
	return s.sparse[id]
}

// each calls fn for every request that has tokens.
func (s *tokenSeq) each(fn func(id int64, st *tokenState)) {
	for id := range s.dense {
		if s.dense[id].count > 0 {
			fn(int64(id), &s.dense[id])
		}
	}
	for id, st := range s.sparse {
		fn(id, st)
	}
}

// ScanTokenMetrics streams token_metrics (path names the CSV form; the
// Parquet or gzipped form is read when that is what the folder holds) through
// fn, checking each row and each request's token sequence on the way.
func ScanTokenMetrics(path string, fn func(TokenMetric) error) error {
	_, err := scanTokens(path, fn)
	return err
}

func scanTokens(path string, fn func(TokenMetric) error) (*tokenSeq, error) {
	var each func(TokenColumns) error
	if fn != nil {
		each = func(c TokenColumns) error {
			for i, id := range c.RequestID {
				if err := fn(TokenMetric{id, c.TokenIndex[i], c.TokenTimeNs[i], c.TokenLatencyNs[i]}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return scanTokenColumns(path, each)
}

// TokenColumns is a block of token rows, column by column: row i of the
// block is RequestID[i], TokenIndex[i], TokenTimeNs[i], TokenLatencyNs[i].
type TokenColumns struct {
	RequestID, TokenIndex, TokenTimeNs, TokenLatencyNs []int64
}

// ScanTokenColumns is ScanTokenMetrics a block of rows at a time (the
// block's slices are reused between calls): every row is checked the same
// way, and a reader of a table of hundreds of millions of rows spends no
// call per row. Requests, when known (the request file's largest id + 1),
// sizes the per-request check state at once.
func ScanTokenColumns(path string, requests int, fn func(TokenColumns) error) error {
	_, err := scanTokenColumnsN(path, requests, fn)
	return err
}

func scanTokenColumns(path string, fn func(TokenColumns) error) (*tokenSeq, error) {
	return scanTokenColumnsN(path, 0, fn)
}

func scanTokenColumnsN(path string, requests int, fn func(TokenColumns) error) (*tokenSeq, error) {
	p, pq, err := TablePath(path)
	if err != nil {
		return nil, err
	}
	seq := newTokenSeq(p)
	seq.reserve(requests)
	err = scanColumns(p, pq, TokenMetricsColumns, func(first int, d [][]int64) error {
		c := TokenColumns{d[0], d[1], d[2], d[3]}
		for i, id := range c.RequestID {
			if err := seq.add(first+i, TokenMetric{id, c.TokenIndex[i], c.TokenTimeNs[i], c.TokenLatencyNs[i]}); err != nil {
				return err
			}
		}
		if fn != nil {
			return fn(c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seq, nil
}

// ReadTokenMetrics reads and checks token_metrics (any stored form).
func ReadTokenMetrics(path string) ([]TokenMetric, error) {
	rows, _, err := readTokens(path)
	return rows, err
}

func readTokens(path string) ([]TokenMetric, *tokenSeq, error) {
	var rows []TokenMetric
	if st, err := os.Stat(path); err == nil {
		// A token row is 25-45 bytes; reserving by size avoids regrowing.
		rows = make([]TokenMetric, 0, st.Size()/24+1)
	}
	seq, err := scanTokens(path, func(m TokenMetric) error {
		rows = append(rows, m)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return rows, seq, nil
}
