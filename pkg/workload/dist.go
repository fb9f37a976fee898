package workload

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// sampler draws one token length. Draws are clipped to [lo, hi] by the caller.
type sampler interface {
	sample(r *rand.Rand) int64
}

type fixedSampler struct{ v int64 }

func (s fixedSampler) sample(*rand.Rand) int64 { return s.v }

type uniformSampler struct{ lo, hi int64 }

func (s uniformSampler) sample(r *rand.Rand) int64 { return s.lo + r.Int64N(s.hi-s.lo+1) }

type normalSampler struct{ mean, std float64 }

func (s normalSampler) sample(r *rand.Rand) int64 {
	return roundLen(s.mean + float64(s.std*r.NormFloat64()))
}

type logNormalSampler struct{ mu, sigma float64 }

func (s logNormalSampler) sample(r *rand.Rand) int64 {
	return roundLen(math.Exp(s.mu + float64(s.sigma*r.NormFloat64())))
}

// logNormalFromMoments gives mu and sigma of log length for a log-normal with
// the given mean and standard deviation of length.
func logNormalFromMoments(mean, std float64) (mu, sigma float64) {
	s2 := math.Log1p(float64(std*std) / float64(mean*mean))
	return math.Log(mean) - s2/2, math.Sqrt(s2)
}

// zipfSampler draws lo + k - 1 with P(k) proportional to k^-s for k in
// 1..hi-lo+1, by inverting a cumulative table (any s > 0, unlike rand.Zipf).
type zipfSampler struct {
	lo  int64
	cdf []float64
}

func newZipf(lo, hi int64, s float64) zipfSampler {
	n := int(hi - lo + 1)
	cdf := make([]float64, n)
	var sum float64
	for k := 1; k <= n; k++ {
		sum += math.Pow(float64(k), -s)
		cdf[k-1] = sum
	}
	return zipfSampler{lo: lo, cdf: cdf}
}

func (s zipfSampler) sample(r *rand.Rand) int64 {
	u := float64(r.Float64() * s.cdf[len(s.cdf)-1])
	i := sort.SearchFloat64s(s.cdf, u)
	if i >= len(s.cdf) {
		i = len(s.cdf) - 1
	}
	return s.lo + int64(i)
}

func roundLen(x float64) int64 {
	switch {
	case math.IsNaN(x) || x < 0:
		return 0
	case x >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(math.Round(x))
}

// table is an empirical length file: named integer columns, row-aligned.
type table struct {
	path string
	cols map[string][]int64
	rows int
	why  map[string]string // why a column was dropped
	q    quoter
}

// empiricalSampler draws a row index; the value is the column at that row.
// The index is what a joint prefill/decode draw shares.
type empiricalSampler struct{ vals []int64 }

func (s empiricalSampler) sample(r *rand.Rand) int64 { return s.vals[r.IntN(len(s.vals))] }

// readTable reads a Vidur-style trace CSV (header with num_prefill_tokens,
// num_decode_tokens, ...), a JSON array of objects, or JSONL objects. Only
// integer-valued columns are kept; a column with a non-integer in any row
// is dropped, and asking for it says so.
func readTable(path string, q quoter) (*table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF}))
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case ext == ".json" || ext == ".jsonl" || (len(trimmed) > 0 && (trimmed[0] == '[' || trimmed[0] == '{')):
		return readJSONTable(path, trimmed, q)
	default:
		return readCSVTable(path, trimmed, q)
	}
}

// csvRowError turns encoding/csv's "record on line 5: wrong number of
// fields" into the file, the line and what to do.
func csvRowError(path string, nHeader int, err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path, err)
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return fmt.Errorf("%s: line %d: a different number of fields than the header's %d; fix or remove that row", path, pe.Line, nHeader)
	}
	return fmt.Errorf("%s: line %d, column %d: %v; fix the row's quoting (a field with a comma or quote must be quoted, quotes inside doubled)", path, pe.Line, pe.Column, pe.Err)
}

func readCSVTable(path string, b []byte, q quoter) (*table, error) {
	cr := csv.NewReader(bytes.NewReader(b))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	names := make([]string, len(header))
	for i, h := range header {
		names[i] = strings.TrimSpace(h)
	}
	t := &table{path: path, cols: map[string][]int64{}, q: q}
	bad := make([]string, len(names)) // first non-integer seen, per column
	vals := make([][]int64, len(names))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvRowError(path, len(names), err)
		}
		for i, f := range rec {
			if bad[i] != "" {
				continue
			}
			v, ok := parseIntish(strings.TrimSpace(f))
			if !ok {
				line, _ := cr.FieldPos(i)
				bad[i] = fmt.Sprintf("line %d has %s", line, q.value(f))
				continue
			}
			vals[i] = append(vals[i], v)
		}
		t.rows++
	}
	for i, n := range names {
		if bad[i] == "" {
			t.cols[n] = vals[i]
		} else {
			t.cols[n] = nil
			t.badNote(n, bad[i])
		}
	}
	return t, nil
}

func (t *table) badNote(col, why string) {
	if t.why == nil {
		t.why = map[string]string{}
	}
	t.why[col] = why
}

func readJSONTable(path string, b []byte, q quoter) (*table, error) {
	var objs []map[string]json.RawMessage
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &objs); err != nil {
			return nil, fmt.Errorf("%s: expected a JSON array of objects: %w", path, err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
		for line := 1; sc.Scan(); line++ {
			l := bytes.TrimSpace(sc.Bytes())
			if len(l) == 0 {
				continue
			}
			var o map[string]json.RawMessage
			if err := json.Unmarshal(l, &o); err != nil {
				return nil, fmt.Errorf("%s: line %d: expected a JSON object: %w", path, line, err)
			}
			objs = append(objs, o)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	t := &table{path: path, cols: map[string][]int64{}, rows: len(objs), q: q}
	// Keys present in every record become columns, like a CSV header.
	var keys []string
	if len(objs) > 0 {
		for k := range objs[0] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	for _, col := range keys {
		vals := make([]int64, 0, len(objs))
		for i, o := range objs {
			raw, ok := o[col]
			if !ok {
				vals = nil
				break
			}
			v, ok := parseIntish(string(raw))
			if !ok {
				t.badNote(col, fmt.Sprintf("record %d has %s", i+1, q.value(string(raw))))
				t.cols[col] = nil
				vals = nil
				break
			}
			vals = append(vals, v)
		}
		if vals != nil {
			t.cols[col] = vals
		}
	}
	return t, nil
}

// parseIntish accepts integers and floats with an integral value (CSV
// writers often print 128.0).
func parseIntish(s string) (int64, bool) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

func (t *table) column(name string) ([]int64, error) {
	vals, ok := t.cols[name]
	if !ok {
		var have []string
		for n := range t.cols {
			have = append(have, n)
		}
		sort.Strings(have)
		return nil, fmt.Errorf("%s has no column %q (columns: %s); set column: to one of them", t.path, name, t.q.columns(have))
	}
	if vals == nil {
		if why, ok := t.why[name]; ok {
			return nil, fmt.Errorf("%s: column %q is not all integers (%s)", t.path, name, why)
		}
	}
	if len(vals) == 0 {
		return nil, fmt.Errorf("%s: column %q has no rows", t.path, name)
	}
	for i, v := range vals {
		if v < 1 {
			return nil, fmt.Errorf("%s: column %q row %d is %d (expected token counts >= 1)", t.path, name, i+1, v)
		}
	}
	return vals, nil
}
