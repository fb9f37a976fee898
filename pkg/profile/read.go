package profile

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// maxErrors caps how many problems one Validate reports, so a wholly wrong
// file gives a readable answer.
const maxErrors = 20

// Error is one problem at a place in a profile file. Row is the 1-based
// line of the CSV (1 is the header); Col the 1-based column; either is 0
// when the problem is not at one cell.
type Error struct {
	File   string
	Row    int
	Col    int
	Column string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Row > 0 {
		fmt.Fprintf(&b, ": row %d", e.Row)
	}
	if e.Col > 0 {
		fmt.Fprintf(&b, ", column %d", e.Col)
		if e.Column != "" {
			fmt.Fprintf(&b, " (%s)", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ModelDir finds the single <device>/<org>/<model> folder under
// root/profiling/compute and returns it with the device and "org/model".
func ModelDir(root string) (dir, device, model string, err error) {
	base := filepath.Join(root, filepath.FromSlash(ComputeDir))
	matches, err := filepath.Glob(filepath.Join(base, "*", "*", "*", MLPFile))
	if err != nil {
		return "", "", "", err
	}
	if len(matches) == 0 {
		return "", "", "", &Error{File: base, Msg: "no <device>/<org>/<model>/" + MLPFile +
			" under it; point at a folder written by the profile stage (see docs/profile.md)"}
	}
	if len(matches) > 1 {
		var names []string
		for _, m := range matches {
			rel, _ := filepath.Rel(base, filepath.Dir(m))
			names = append(names, filepath.ToSlash(rel))
		}
		sort.Strings(names)
		return "", "", "", &Error{File: base, Msg: "holds several profiles (" + strings.Join(names, ", ") +
			"); keep one device/model per profile folder"}
	}
	dir = filepath.Dir(matches[0])
	rel, _ := filepath.Rel(base, dir)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	return dir, parts[0], parts[1] + "/" + parts[2], nil
}

// Read loads the profile under root. It checks what Validate checks and
// returns the first problems found.
func Read(root string) (*Profile, error) {
	p, errs := parse(root)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return p, nil
}

// Validate checks every file of the profile under root against Vidur's
// headers and the invariants of the data (positive finite times,
// min <= median <= max, consistent model shape, a valid attention grid),
// naming file, row and column of each problem.
func Validate(root string) error {
	_, errs := parse(root)
	if len(errs) > 0 {
		return joinErrors(errs)
	}
	return nil
}

func joinErrors(errs []error) error {
	if len(errs) > maxErrors {
		n := len(errs) - maxErrors
		errs = append(errs[:maxErrors:maxErrors], fmt.Errorf("... and %d more problems", n))
	}
	return errors.Join(errs...)
}

func parse(root string) (*Profile, []error) {
	dir, device, model, err := ModelDir(root)
	if err != nil {
		return nil, []error{err}
	}
	p := &Profile{Device: device, Model: model}
	var errs []error
	p.MLP, errs = parseMLP(filepath.Join(dir, MLPFile))
	var aerrs []error
	p.Attention, aerrs = parseAttention(filepath.Join(dir, AttentionFile))
	errs = append(errs, aerrs...)
	cpuPath := filepath.Join(root, CPUOverheadFile)
	if _, err := os.Stat(cpuPath); err == nil {
		var cerrs []error
		p.CPURows, cerrs = parseCPU(cpuPath)
		errs = append(errs, cerrs...)
		p.CPU = map[string]float64{}
		for _, r := range p.CPURows {
			p.CPU[cpuKey(r.Name, r.BatchSize)] = r.Stat.Median
		}
	}
	extraPath := filepath.Join(root, ExtraOpsFile)
	if _, err := os.Stat(extraPath); err == nil {
		var xerrs []error
		p.Extra, xerrs = parseExtra(extraPath)
		errs = append(errs, xerrs...)
	}
	sortRows(p)
	return p, errs
}

// table is a CSV file read whole, with its header checked.
type table struct {
	path   string
	header []string
	rows   [][]string
	errs   []error
}

func readTable(path string, want []string) *table {
	t := &table{path: path}
	f, err := os.Open(path)
	if err != nil {
		t.errs = append(t.errs, &Error{File: path, Msg: fmt.Sprintf("cannot open: %v", err)})
		return t
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	line := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				t.errs = append(t.errs, &Error{File: path, Row: pe.Line, Col: pe.Column, Msg: "bad CSV: " + pe.Err.Error()})
			} else {
				t.errs = append(t.errs, &Error{File: path, Row: line, Msg: "bad CSV: " + err.Error()})
			}
			return t
		}
		if line == 1 {
			t.header = rec
			continue
		}
		t.rows = append(t.rows, rec)
	}
	if t.header == nil {
		t.errs = append(t.errs, &Error{File: path, Msg: "empty file; expected the header " + strings.Join(want, ",")})
		return t
	}
	for i := 0; i < len(want) || i < len(t.header); i++ {
		switch {
		case i >= len(t.header):
			t.errs = append(t.errs, &Error{File: path, Row: 1, Col: i + 1, Column: want[i],
				Msg: fmt.Sprintf("header ends early: column %q is missing; the header must be exactly Vidur's (docs/profile.md)", want[i])})
			return t
		case i >= len(want):
			t.errs = append(t.errs, &Error{File: path, Row: 1, Col: i + 1, Column: t.header[i],
				Msg: fmt.Sprintf("unexpected extra column %q; the header must be exactly Vidur's (docs/profile.md)", t.header[i])})
			return t
		case t.header[i] != want[i]:
			t.errs = append(t.errs, &Error{File: path, Row: 1, Col: i + 1, Column: t.header[i],
				Msg: fmt.Sprintf("header has %q where Vidur's has %q", t.header[i], want[i])})
			return t
		}
	}
	if len(t.rows) == 0 {
		t.errs = append(t.errs, &Error{File: path, Row: 2, Msg: "no data rows"})
	}
	for i, rec := range t.rows {
		if len(rec) != len(want) {
			t.errs = append(t.errs, &Error{File: path, Row: i + 2,
				Msg: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(want))})
		}
	}
	return t
}

// cells reads typed cells of one row, collecting positioned errors.
type cells struct {
	t    *table
	row  int // index into t.rows
	rec  []string
	col  map[string]int
	errs []error
}

func (c *cells) fail(name, msg string) {
	i := c.col[name]
	c.errs = append(c.errs, &Error{File: c.t.path, Row: c.row + 2, Col: i + 1, Column: name, Msg: msg})
}

func (c *cells) raw(name string) string { return strings.TrimSpace(c.rec[c.col[name]]) }

func (c *cells) int(name string, min int) int {
	s := c.raw(name)
	v, err := strconv.Atoi(s)
	if err != nil {
		// pandas may write integral columns as floats ("16.0").
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			c.fail(name, fmt.Sprintf("not an integer: %q", s))
			return 0
		}
		v = int(f)
	}
	if v < min {
		c.fail(name, fmt.Sprintf("is %d, must be at least %d", v, min))
	}
	return v
}

func (c *cells) bool(name string) bool {
	switch c.raw(name) {
	case "True", "true", "1":
		return true
	case "False", "false", "0":
		return false
	}
	c.fail(name, fmt.Sprintf("not a boolean: %q (Vidur writes True or False)", c.raw(name)))
	return false
}

// stat reads one op's five statistics. present is false when all five cells
// are empty; emptyOK says whether that is allowed for this row.
func (c *cells) stat(op string, emptyOK bool) (s Stat, present bool) {
	var v [5]float64
	empty := 0
	for _, st := range Stats {
		if c.raw("time_stats."+op+"."+st) == "" {
			empty++
		}
	}
	if empty == len(Stats) {
		if !emptyOK {
			c.fail("time_stats."+op+".min", "op "+op+" has no timings in this row; every row needs them")
		}
		return Stat{}, false
	}
	ok := true
	for i, st := range Stats {
		name := "time_stats." + op + "." + st
		s := c.raw(name)
		f, err := strconv.ParseFloat(s, 64)
		switch {
		case s == "":
			c.fail(name, "empty; an op's five statistics are all set or all empty")
			ok = false
		case err != nil:
			c.fail(name, fmt.Sprintf("not a number: %q", s))
			ok = false
		case math.IsNaN(f) || math.IsInf(f, 0):
			c.fail(name, fmt.Sprintf("not a finite number: %q", s))
			ok = false
		case f < 0:
			c.fail(name, fmt.Sprintf("negative time %v ms", f))
			ok = false
		}
		v[i] = f
	}
	s = Stat{Min: v[0], Max: v[1], Mean: v[2], Median: v[3], Std: v[4]}
	if ok {
		// Rounding in the writer can leave the mean a hair outside; allow it.
		const slack = 1e-9
		if s.Min > s.Median+slack || s.Median > s.Max+slack {
			c.fail("time_stats."+op+".median", fmt.Sprintf("median %v is outside [min %v, max %v]", s.Median, s.Min, s.Max))
		}
		if s.Mean < s.Min-slack-1e-6*s.Min || s.Mean > s.Max+slack+1e-6*s.Max {
			c.fail("time_stats."+op+".mean", fmt.Sprintf("mean %v is outside [min %v, max %v]", s.Mean, s.Min, s.Max))
		}
	}
	return s, ok
}

func colIndex(header []string) map[string]int {
	m := make(map[string]int, len(header))
	for i, h := range header {
		m[h] = i
	}
	return m
}

func parseMLP(path string) ([]MLPRow, []error) {
	t := readTable(path, MLPColumns())
	if len(t.errs) > 0 {
		return nil, t.errs
	}
	col := colIndex(t.header)
	var rows []MLPRow
	var errs []error
	seen := map[int]int{}
	var first *MLPRow
	for i, rec := range t.rows {
		c := &cells{t: t, row: i, rec: rec, col: col}
		r := MLPRow{TimeMs: map[string]float64{}, Stats: map[string]Stat{}}
		for _, op := range MLPOps {
			if s, ok := c.stat(op, false); ok {
				r.Stats[op] = s
				r.TimeMs[op] = s.Median
			}
		}
		r.NHead = c.int("n_head", 1)
		r.NKVHead = c.int("n_kv_head", 1)
		r.NEmbd = c.int("n_embd", 1)
		r.NExpandedEmbd = c.int("n_expanded_embd", 1)
		r.VocabSize = c.int("vocab_size", 1)
		r.UseGatedMLP = c.bool("use_gated_mlp")
		r.NumTokens = c.int("num_tokens", 1)
		r.NumTensorParallelWorkers = c.int("num_tensor_parallel_workers", 1)
		if prev, dup := seen[r.NumTokens]; dup && len(c.errs) == 0 {
			c.fail("num_tokens", fmt.Sprintf("num_tokens %d repeats row %d; one row per token count", r.NumTokens, prev))
		}
		seen[r.NumTokens] = i + 2
		if first == nil && len(c.errs) == 0 {
			f := r
			first = &f
		} else if first != nil && len(c.errs) == 0 {
			sameShape(c, first.NHead, r.NHead, "n_head")
			sameShape(c, first.NKVHead, r.NKVHead, "n_kv_head")
			sameShape(c, first.NEmbd, r.NEmbd, "n_embd")
			sameShape(c, first.NExpandedEmbd, r.NExpandedEmbd, "n_expanded_embd")
			sameShape(c, first.VocabSize, r.VocabSize, "vocab_size")
			sameShape(c, first.NumTensorParallelWorkers, r.NumTensorParallelWorkers, "num_tensor_parallel_workers")
		}
		errs = append(errs, c.errs...)
		rows = append(rows, r)
	}
	return rows, errs
}

func sameShape(c *cells, want, got int, name string) {
	if want != got {
		c.fail(name, fmt.Sprintf("is %d but the first row has %d; a profile holds one model shape", got, want))
	}
}

type attnKey struct {
	prefill           bool
	batch, chunk, kvc int
}

func parseAttention(path string) ([]AttentionRow, []error) {
	t := readTable(path, AttentionColumns())
	if len(t.errs) > 0 {
		return nil, t.errs
	}
	col := colIndex(t.header)
	var rows []AttentionRow
	var errs []error
	seen := map[attnKey]int{}
	var first *AttentionRow
	for i, rec := range t.rows {
		c := &cells{t: t, row: i, rec: rec, col: col}
		r := AttentionRow{TimeMs: map[string]float64{}, Stats: map[string]Stat{}}
		r.NEmbd = c.int("n_embd", 1)
		r.NQHead = c.int("n_q_head", 1)
		r.NKVHead = c.int("n_kv_head", 1)
		r.BlockSize = c.int("block_size", 1)
		r.NumTensorParallelWorkers = c.int("num_tensor_parallel_workers", 1)
		r.MaxModelLen = c.int("max_model_len", 1)
		r.BatchSize = c.int("batch_size", 1)
		r.PrefillChunkSize = c.int("prefill_chunk_size", 0)
		r.KVCacheSize = c.int("kv_cache_size", 0)
		r.IsPrefill = c.bool("is_prefill")
		r.AttentionBackend = c.raw("attention_backend")
		if r.AttentionBackend == "" {
			c.fail("attention_backend", "empty; name the attention backend measured")
		}
		for _, op := range AttentionOps {
			emptyOK := (op == "attn_prefill" && !r.IsPrefill) || (op == "attn_decode" && r.IsPrefill)
			if s, ok := c.stat(op, emptyOK); ok {
				r.Stats[op] = s
				r.TimeMs[op] = s.Median
			}
		}
		if len(c.errs) == 0 {
			if r.IsPrefill {
				if r.PrefillChunkSize == 0 {
					c.fail("prefill_chunk_size", "a prefill row needs prefill_chunk_size > 0")
				}
				if r.BatchSize != 1 {
					c.fail("batch_size", fmt.Sprintf("a prefill row has batch_size 1 (Vidur profiles one prefill at a time), not %d", r.BatchSize))
				}
				if r.PrefillChunkSize+r.KVCacheSize > r.MaxModelLen {
					c.fail("kv_cache_size", fmt.Sprintf("prefill_chunk_size + kv_cache_size = %d exceeds max_model_len %d",
						r.PrefillChunkSize+r.KVCacheSize, r.MaxModelLen))
				}
			} else {
				if r.PrefillChunkSize != 0 {
					c.fail("prefill_chunk_size", "a decode row has prefill_chunk_size 0")
				}
				if r.KVCacheSize == 0 {
					c.fail("kv_cache_size", "a decode row needs kv_cache_size > 0")
				}
				if r.KVCacheSize > r.MaxModelLen {
					c.fail("kv_cache_size", fmt.Sprintf("kv_cache_size %d exceeds max_model_len %d", r.KVCacheSize, r.MaxModelLen))
				}
			}
		}
		k := attnKey{r.IsPrefill, r.BatchSize, r.PrefillChunkSize, r.KVCacheSize}
		if prev, dup := seen[k]; dup && len(c.errs) == 0 {
			c.fail("kv_cache_size", fmt.Sprintf("same (is_prefill, batch_size, prefill_chunk_size, kv_cache_size) as row %d", prev))
		}
		seen[k] = i + 2
		if first == nil && len(c.errs) == 0 {
			f := r
			first = &f
		} else if first != nil && len(c.errs) == 0 {
			sameShape(c, first.NEmbd, r.NEmbd, "n_embd")
			sameShape(c, first.NQHead, r.NQHead, "n_q_head")
			sameShape(c, first.NKVHead, r.NKVHead, "n_kv_head")
			sameShape(c, first.BlockSize, r.BlockSize, "block_size")
			sameShape(c, first.NumTensorParallelWorkers, r.NumTensorParallelWorkers, "num_tensor_parallel_workers")
		}
		errs = append(errs, c.errs...)
		rows = append(rows, r)
	}
	return rows, errs
}

// msStats reads the five *_ms statistic cells of gsim's own files.
func (c *cells) msStats(nonNegative bool) Stat {
	var v [5]float64
	for j, name := range []string{"min_ms", "max_ms", "mean_ms", "median_ms", "std_ms"} {
		s := c.raw(name)
		f, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			c.fail(name, fmt.Sprintf("not a finite number: %q", s))
		case nonNegative && f < 0:
			c.fail(name, fmt.Sprintf("negative time %v ms", f))
		}
		v[j] = f
	}
	st := Stat{Min: v[0], Max: v[1], Mean: v[2], Median: v[3], Std: v[4]}
	if len(c.errs) == 0 && (st.Median < st.Min || st.Median > st.Max) {
		c.fail("median_ms", fmt.Sprintf("median %v is outside [min %v, max %v]", st.Median, st.Min, st.Max))
	}
	return st
}

func parseExtra(path string) ([]ExtraOp, []error) {
	t := readTable(path, ExtraOpsColumns)
	if len(t.errs) > 0 {
		return nil, t.errs
	}
	col := colIndex(t.header)
	var rows []ExtraOp
	var errs []error
	type key struct {
		op   string
		n, k int
	}
	seen := map[key]int{}
	for i, rec := range t.rows {
		c := &cells{t: t, row: i, rec: rec, col: col}
		r := ExtraOp{Op: c.raw("op")}
		if r.Op == "" {
			c.fail("op", "empty op name")
		}
		r.NumTokens = c.int("num_tokens", 1)
		r.KVTokens = c.int("kv_tokens", 0)
		r.Samples = c.int("samples", 1)
		r.Stat = c.msStats(true)
		k := key{r.Op, r.NumTokens, r.KVTokens}
		if prev, dup := seen[k]; dup && len(c.errs) == 0 {
			c.fail("num_tokens", fmt.Sprintf("same (op, num_tokens, kv_tokens) as row %d", prev))
		}
		seen[k] = i + 2
		errs = append(errs, c.errs...)
		rows = append(rows, r)
	}
	return rows, errs
}

func parseCPU(path string) ([]CPUOverhead, []error) {
	t := readTable(path, CPUOverheadColumns)
	if len(t.errs) > 0 {
		return nil, t.errs
	}
	col := colIndex(t.header)
	var rows []CPUOverhead
	var errs []error
	for i, rec := range t.rows {
		c := &cells{t: t, row: i, rec: rec, col: col}
		r := CPUOverhead{Name: c.raw("name")}
		if r.Name == "" {
			c.fail("name", "empty name")
		}
		r.BatchSize = c.int("batch_size", 1)
		r.Samples = c.int("samples", 1)
		// Overheads are differences of two timers, so one sample may dip
		// below zero; the median must still lie within [min, max].
		r.Stat = c.msStats(false)
		errs = append(errs, c.errs...)
		rows = append(rows, r)
	}
	return rows, errs
}
