package workload

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// Public production traces gsim reads natively (docs/workload.md says where
// to get each and what its columns mean).
const (
	// FormatAzure is the Azure LLM inference trace, 2023 (Splitwise: one
	// hour of code and of conversation requests) and 2024 (DynamoLLM: a
	// week of each): TIMESTAMP,ContextTokens,GeneratedTokens.
	FormatAzure = "azure"
	// FormatBurstGPT is BurstGPT (ChatGPT and GPT-4 on Azure, four months):
	// Timestamp,[Session ID,Elapsed time,]Model,Request tokens,Response
	// tokens,Total tokens,Log Type.
	FormatBurstGPT = "burstgpt"
	// FormatMooncake is the Mooncake (Kimi) trace JSONL: timestamp (ms),
	// input_length, output_length, hash_ids.
	FormatMooncake = "mooncake"
)

// Source is `with.source`: requests (arrival times and token counts) taken
// from a public trace file instead of generated.
type Source struct {
	Format string `json:"format"`
	Path   string `json:"path"`
	// Start and Duration cut a window out of the trace, measured from its
	// first request (Go durations: 2h, 24h).
	Start    string `json:"start,omitempty"`
	Duration string `json:"duration,omitempty"`
	// RateScale multiplies the arrival rate: 2 replays the window in half
	// the time (every gap halved), 0.5 stretches it.
	RateScale *float64 `json:"rate_scale,omitempty"`
	// Sample keeps each request of the window with this probability (drawn
	// from the workload's seed), thinning the rate while keeping its shape.
	Sample *float64 `json:"sample,omitempty"`
	// Models (BurstGPT) keeps only these Model values, e.g. [ChatGPT].
	Models []string `json:"models,omitempty"`
	// LogType (BurstGPT) keeps only "conversation" or "api" requests.
	LogType string `json:"log_type,omitempty"`
}

// traceRow is one request as a trace gives it.
type traceRow struct {
	atNs            int64 // absolute or relative, in the trace's own epoch
	prefill, decode int64
	blocks          []int64 // Mooncake hash_ids
	filtered        bool    // left out by models/log_type
}

// TraceStats says what reading a trace kept and dropped, for the stage log.
type TraceStats struct {
	Rows, InWindow, Sampled, ZeroTokens, Filtered int
	// PrefixBlocks and RepeatedBlocks count Mooncake hash_ids, and those
	// that an earlier request of the window already had: the prefix-cache
	// reuse the canonical workload cannot express.
	PrefixBlocks, RepeatedBlocks int64
	Span                         time.Duration // first to last kept arrival
}

func (s TraceStats) String() string {
	out := fmt.Sprintf("%d rows read, %d in the window, %d kept after sampling", s.Rows, s.InWindow, s.Sampled)
	if s.ZeroTokens > 0 {
		out += fmt.Sprintf(", %d dropped for a zero token count (failed requests)", s.ZeroTokens)
	}
	if s.Filtered > 0 {
		out += fmt.Sprintf(", %d filtered out by models/log_type", s.Filtered)
	}
	if s.PrefixBlocks > 0 {
		out += fmt.Sprintf("; hash_ids dropped: %d prefix blocks, %d (%.1f%%) repeat an earlier request's block",
			s.PrefixBlocks, s.RepeatedBlocks, 100*float64(s.RepeatedBlocks)/float64(s.PrefixBlocks))
	}
	return out + fmt.Sprintf("; %s of arrivals", s.Span)
}

func (s Source) check(bad func(path, format string, args ...any)) {
	switch s.Format {
	case FormatAzure, FormatBurstGPT, FormatMooncake:
	case "":
		bad("source.format", "required: azure, burstgpt or mooncake")
	default:
		bad("source.format", "%q is not a trace format (expected azure, burstgpt or mooncake)", s.Format)
	}
	if s.Path == "" {
		bad("source.path", "required: the trace file (plain or .gz)")
	}
	for _, d := range []struct{ field, v string }{{"start", s.Start}, {"duration", s.Duration}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		switch {
		case err != nil:
			bad("source."+d.field, "%v (expected a Go duration such as 30m or 24h)", err)
		case v < 0 || d.field == "duration" && v == 0:
			bad("source."+d.field, "must be > 0")
		}
	}
	if r := s.RateScale; r != nil && (!(*r > 0) || math.IsInf(*r, 0)) {
		bad("source.rate_scale", "must be > 0 (2 doubles the arrival rate)")
	}
	if f := s.Sample; f != nil && !(*f > 0 && *f <= 1) {
		bad("source.sample", "must be in (0, 1]: the fraction of requests kept")
	}
	if s.Format != FormatBurstGPT {
		if len(s.Models) > 0 {
			bad("source.models", "only BurstGPT traces name models; remove it")
		}
		if s.LogType != "" {
			bad("source.log_type", "only BurstGPT traces have a log type; remove it")
		}
	}
	switch s.LogType {
	case "", "conversation", "api":
	default:
		bad("source.log_type", "%q (expected conversation or api)", s.LogType)
	}
}

func (s Source) window() (start, dur int64) {
	if s.Start != "" {
		d, _ := time.ParseDuration(s.Start)
		start = d.Nanoseconds()
	}
	dur = math.MaxInt64
	if s.Duration != "" {
		d, _ := time.ParseDuration(s.Duration)
		dur = d.Nanoseconds()
	}
	return start, dur
}

// readSource reads the trace, cuts the window, samples, rescales and returns
// requests with arrivals from 0. limit > 0 keeps the first limit requests.
func readSource(s Source, path string, seed int64, limit int) ([]schema.Request, TraceStats, error) {
	var st TraceStats
	f, err := os.Open(path)
	if err != nil {
		return nil, st, fmt.Errorf("source.path: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, st, fmt.Errorf("%s: not a gzip file: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	start, dur := s.window()
	var rows []traceRow
	var t0 int64
	first := true
	keep := func(row traceRow) {
		st.Rows++
		if first {
			t0, first = row.atNs, false
		}
		if row.filtered {
			st.Filtered++
			return
		}
		if off := row.atNs - t0; off < start || off-start >= dur {
			return
		}
		st.InWindow++
		rows = append(rows, row)
	}
	switch s.Format {
	case FormatAzure:
		err = readAzure(r, path, keep)
	case FormatBurstGPT:
		err = readBurstGPT(r, path, s, keep)
	case FormatMooncake:
		err = readMooncake(r, path, keep)
	}
	if err != nil {
		return nil, st, err
	}
	if st.Rows == 0 {
		return nil, st, fmt.Errorf("%s: no requests in the file", path)
	}
	// Traces are logged in arrival order, but nothing promises it: order by
	// time, keeping the file's order among equal times.
	slices.SortStableFunc(rows, func(a, b traceRow) int { return cmpInt(a.atNs, b.atNs) })
	scale := 1.0
	if s.RateScale != nil {
		scale = *s.RateScale
	}
	rng := rand.New(rand.NewPCG(uint64(seed), streamTrace))
	seen := map[int64]bool{}
	var out []schema.Request
	var prev int64
	for _, row := range rows {
		if s.Sample != nil && rng.Float64() >= *s.Sample {
			continue
		}
		if row.prefill < 1 || row.decode < 1 {
			st.ZeroTokens++
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		at := toNs(float64(row.atNs-t0-start) / 1e9 / scale)
		at = max(at, prev) // rounding never reorders
		for _, b := range row.blocks {
			st.PrefixBlocks++
			if seen[b] {
				st.RepeatedBlocks++
			}
			seen[b] = true
		}
		id := int64(len(out))
		out = append(out, schema.Request{ID: id, PromptID: id, NumPrefillTokens: row.prefill, NumDecodeTokens: row.decode,
			InterArrivalNs: at - prev, ArrivalTimeNs: at})
		prev = at
		if len(out) > maxRequest {
			return nil, st, fmt.Errorf("%s: more than %d requests in the window; shorten source.duration or lower source.sample", path, maxRequest)
		}
	}
	st.Sampled = len(out) + st.ZeroTokens
	if len(out) == 0 {
		return nil, st, fmt.Errorf("%s: no request left (%s); widen source.start/duration or raise source.sample", path, st)
	}
	// The first kept request arrives at 0, as in every gsim workload.
	shift := out[0].ArrivalTimeNs
	for i := range out {
		out[i].ArrivalTimeNs -= shift
	}
	out[0].InterArrivalNs = 0
	st.Span = time.Duration(out[len(out)-1].ArrivalTimeNs)
	return out, st, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lineReader yields a file's lines without their end of line, numbered from 1.
type lineReader struct {
	br   *bufio.Reader
	path string
	line int
}

func newLineReader(r io.Reader, path string) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 1<<20), path: path}
}

// next returns the next line (valid until the next call), or io.EOF.
func (l *lineReader) next() ([]byte, error) {
	for {
		b, err := l.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%s: line %d is longer than 1 MiB; is this the right file?", l.path, l.line+1)
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s: %w", l.path, err)
		}
		if len(b) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		l.line++
		if l.line == 1 {
			b = bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF})
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(bytes.TrimSpace(b)) == 0 {
			continue // blank lines (a trailing one is common)
		}
		return b, nil
	}
}

func (l *lineReader) errorf(col, format string, args ...any) error {
	where := fmt.Sprintf("%s: line %d", l.path, l.line)
	if col != "" {
		where += ", column " + col
	}
	return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
}

// header reads the header line and maps each wanted column to its index.
func (l *lineReader) header(format string, want []string) (map[string]int, []string, error) {
	b, err := l.next()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("%s: empty file (expected a %s trace with header %s)", l.path, format, strings.Join(want, ","))
	}
	if err != nil {
		return nil, nil, err
	}
	names := strings.Split(string(b), ",")
	idx := map[string]int{}
	for i, n := range names {
		idx[strings.TrimSpace(n)] = i
	}
	for _, w := range want {
		if _, ok := idx[w]; !ok {
			return nil, nil, fmt.Errorf("%s: line 1: no column %q in header %q (expected a %s trace: %s; is source.format right?)",
				l.path, w, string(b), format, strings.Join(want, ","))
		}
	}
	return idx, names, nil
}

func splitFields(b []byte, dst [][]byte) [][]byte {
	dst = dst[:0]
	for {
		i := bytes.IndexByte(b, ',')
		if i < 0 {
			return append(dst, bytes.TrimSpace(b))
		}
		dst = append(dst, bytes.TrimSpace(b[:i]))
		b = b[i+1:]
	}
}

func (l *lineReader) tokens(f []byte, col string) (int64, error) {
	v, err := strconv.ParseInt(string(f), 10, 64)
	if err != nil {
		// Some exports write counts as 128.0.
		x, ferr := strconv.ParseFloat(string(f), 64)
		if ferr != nil || x != math.Trunc(x) || math.IsInf(x, 0) {
			return 0, l.errorf(col, "%q is not a token count (expected an integer)", f)
		}
		v = int64(x)
	}
	if v < 0 {
		return 0, l.errorf(col, "%d is negative (expected a token count >= 0)", v)
	}
	return v, nil
}

// readAzure reads TIMESTAMP,ContextTokens,GeneratedTokens.
func readAzure(r io.Reader, path string, keep func(traceRow)) error {
	lr := newLineReader(r, path)
	cols := []string{"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
	idx, names, err := lr.header("Azure LLM inference", cols)
	if err != nil {
		return err
	}
	ti, ci, gi := idx[cols[0]], idx[cols[1]], idx[cols[2]]
	var fields [][]byte
	for {
		b, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fields = splitFields(b, fields)
		if len(fields) != len(names) {
			return lr.errorf("", "%d fields, the header has %d", len(fields), len(names))
		}
		at, ok := parseTimestamp(fields[ti])
		if !ok {
			return lr.errorf("TIMESTAMP", "%q is not a time (expected 2023-11-16 18:17:03.9799600 or 2024-05-10 00:00:00.009930+00:00)", fields[ti])
		}
		var row traceRow
		row.atNs = at
		if row.prefill, err = lr.tokens(fields[ci], "ContextTokens"); err != nil {
			return err
		}
		if row.decode, err = lr.tokens(fields[gi], "GeneratedTokens"); err != nil {
			return err
		}
		keep(row)
	}
}

// parseTimestamp reads "YYYY-MM-DD HH:MM:SS[.fraction][Z|±HH:MM]" (a T may
// stand for the space) as ns since the Unix epoch; a time without an offset
// is UTC. Hand-parsed: a week of the 2024 trace is 44 million rows.
func parseTimestamp(b []byte) (int64, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != ' ' && b[10] != 'T') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 {
		return 0, false
	}
	rest := b[19:]
	var frac int64
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		scale := int64(1e8)
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			if scale > 0 {
				frac += int64(rest[i]-'0') * scale
				scale /= 10
			}
		}
		if i == 1 {
			return 0, false
		}
		rest = rest[i:]
	}
	var offset int64
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[4:6])
		if !ok1 || !ok2 {
			return 0, false
		}
		offset = int64(oh*3600+om*60) * 1e9
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC)
	return t.UnixNano() + frac - offset, true
}

// readBurstGPT reads BurstGPT's CSV; Timestamp is in seconds from the
// trace's start. Rows with 0 response tokens are the failed requests of the
// files without "without_fails" in their name; they are counted and dropped
// with every other zero count.
func readBurstGPT(r io.Reader, path string, s Source, keep func(traceRow)) error {
	lr := newLineReader(r, path)
	cols := []string{"Timestamp", "Model", "Request tokens", "Response tokens", "Log Type"}
	idx, names, err := lr.header("BurstGPT", cols)
	if err != nil {
		return err
	}
	ti, mi, qi, ri, li := idx[cols[0]], idx[cols[1]], idx[cols[2]], idx[cols[3]], idx[cols[4]]
	wantLog := map[string]string{"conversation": "Conversation log", "api": "API log"}[s.LogType]
	var fields [][]byte
	for {
		b, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fields = splitFields(b, fields)
		if len(fields) != len(names) {
			return lr.errorf("", "%d fields, the header has %d", len(fields), len(names))
		}
		sec, perr := strconv.ParseFloat(string(fields[ti]), 64)
		if perr != nil || sec < 0 || math.IsInf(sec, 0) || math.IsNaN(sec) {
			return lr.errorf("Timestamp", "%q is not a time in seconds", fields[ti])
		}
		var row traceRow
		row.atNs = toNs(sec)
		if (len(s.Models) > 0 && !slices.Contains(s.Models, string(fields[mi]))) || (wantLog != "" && string(fields[li]) != wantLog) {
			row.filtered = true
			keep(row)
			continue
		}
		if row.prefill, err = lr.tokens(fields[qi], "Request tokens"); err != nil {
			return err
		}
		if row.decode, err = lr.tokens(fields[ri], "Response tokens"); err != nil {
			return err
		}
		keep(row)
	}
}

// readMooncake reads Mooncake's JSONL: timestamp in ms from the trace's
// start, input_length, output_length and hash_ids (the prompt's 512-token
// blocks, remapped so that equal ids are equal prefixes).
func readMooncake(r io.Reader, path string, keep func(traceRow)) error {
	lr := newLineReader(r, path)
	for {
		b, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var rec struct {
			Timestamp    *float64 `json:"timestamp"`
			InputLength  *int64   `json:"input_length"`
			OutputLength *int64   `json:"output_length"`
			HashIDs      []int64  `json:"hash_ids"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return lr.errorf("", "not a JSON object: %v (expected a Mooncake trace line: {\"timestamp\": ms, \"input_length\": n, \"output_length\": n, \"hash_ids\": [...]})", err)
		}
		switch {
		case rec.Timestamp == nil:
			return lr.errorf("timestamp", "missing (expected milliseconds from the trace's start)")
		case rec.InputLength == nil:
			return lr.errorf("input_length", "missing (expected the prompt's token count)")
		case rec.OutputLength == nil:
			return lr.errorf("output_length", "missing (expected the generated token count)")
		case *rec.Timestamp < 0 || math.IsInf(*rec.Timestamp, 0):
			return lr.errorf("timestamp", "%v is not a time in ms", *rec.Timestamp)
		case *rec.InputLength < 0:
			return lr.errorf("input_length", "%d is negative", *rec.InputLength)
		case *rec.OutputLength < 0:
			return lr.errorf("output_length", "%d is negative", *rec.OutputLength)
		}
		keep(traceRow{atNs: toNs(*rec.Timestamp / 1e3), prefill: *rec.InputLength, decode: *rec.OutputLength, blocks: rec.HashIDs})
	}
}
