package schema

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// Prompt is one line of prompts.jsonl.
type Prompt struct {
	ID   int64  `json:"prompt_id"`
	Text string `json:"text"`
}

// WorkloadGenerator is the generator name written by gsim's own writer when
// the caller leaves Meta.Generator empty.
const WorkloadGenerator = "gsim workload v1"

// WorkloadDigest is the identity of a workload: sha256 over
// trace_lengths.csv then trace_intervals.csv, each as its file name, a NUL,
// its size in decimal, a NUL, then its bytes. prompts.jsonl and the meta are
// left out on purpose: timing depends only on lengths and arrivals.
func WorkloadDigest(dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{TraceLengthsFile, TraceIntervalsFile} {
		// Streamed: a million-request workload is 50 MB of CSV.
		if err := hashSized(h, name, filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("workload digest: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashSized(h io.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s\x00%d\x00", name, st.Size())
	n, err := io.Copy(h, f)
	if err == nil && n != st.Size() {
		err = fmt.Errorf("%s changed while being read", path)
	}
	return err
}

// ShortDigest is the workload_id: the first 12 hex digits of the digest.
func ShortDigest(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// WriteWorkload writes the two trace CSVs, prompts.jsonl when w has prompts,
// and workload_meta.json with schema_version, workload_id, num_requests and
// the per-file digests filled in (w.Meta is updated). CreatedAt, when empty,
// is the current time, or $SOURCE_DATE_EPOCH when set so that rebuilt
// folders can be byte-identical.
func WriteWorkload(dir string, w *Workload) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lp := filepath.Join(dir, TraceLengthsFile)
	err := writeFileWith(lp, func(f io.Writer) error {
		iw := newIntWriter(f, TraceLengthsColumns)
		iw.writeHeader()
		for _, r := range w.Requests {
			if err := iw.writeRow(r.ID, r.PromptID, r.NumPrefillTokens, r.NumDecodeTokens); err != nil {
				return err
			}
		}
		return iw.flush()
	})
	if err != nil {
		return err
	}
	ip := filepath.Join(dir, TraceIntervalsFile)
	err = writeFileWith(ip, func(f io.Writer) error {
		iw := newIntWriter(f, TraceIntervalsColumns)
		iw.writeHeader()
		for _, r := range w.Requests {
			if err := iw.writeRow(r.ID, r.InterArrivalNs, r.ArrivalTimeNs); err != nil {
				return err
			}
		}
		return iw.flush()
	})
	if err != nil {
		return err
	}
	files := []string{TraceLengthsFile, TraceIntervalsFile}
	if len(w.Prompts) > 0 {
		pp := filepath.Join(dir, PromptsFile)
		err = writeFileWith(pp, func(f io.Writer) error {
			bw := bufio.NewWriter(f)
			enc := json.NewEncoder(bw)
			enc.SetEscapeHTML(false)
			for _, p := range w.Prompts {
				if err := enc.Encode(p); err != nil {
					return err
				}
			}
			return bw.Flush()
		})
		if err != nil {
			return err
		}
		files = append(files, PromptsFile)
	}
	m := &w.Meta
	m.SchemaVersion = Version
	m.NumRequests = len(w.Requests)
	if m.Generator == "" {
		m.Generator = WorkloadGenerator
	}
	if m.CreatedAt == "" {
		m.CreatedAt = createdAt()
	}
	m.Digests = make(map[string]string, len(files))
	for _, name := range files {
		d, err := stage.FileDigest(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		m.Digests[name] = d
	}
	wd, err := WorkloadDigest(dir)
	if err != nil {
		return err
	}
	m.WorkloadID = ShortDigest(wd)
	return writeJSON(filepath.Join(dir, WorkloadMetaFile), m)
}

func createdAt() string {
	t := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			t = time.Unix(sec, 0)
		}
	}
	return t.UTC().Format(time.RFC3339)
}

// ReadWorkload reads and checks a workload folder: the two trace CSVs
// (required), prompts.jsonl and workload_meta.json (each when present).
// Rules: request ids strictly increasing and listed in the same order in both
// CSVs; prompt_id >= 0; num_prefill_tokens and num_decode_tokens >= 1;
// inter_arrival_ns >= 0; arrival_time_ns = cumulative sum of inter_arrival_ns
// (so the first arrival equals the first inter-arrival); every prompt_id has
// a prompt when prompts.jsonl exists.
func ReadWorkload(dir string) (*Workload, error) {
	lp := filepath.Join(dir, TraceLengthsFile)
	var reqs []Request
	if n := metaRequests(dir); n > 0 {
		// Reserving avoids regrowing a million-request slice.
		reqs = make([]Request, 0, n)
	}
	err := scanInts(lp, TraceLengthsColumns, func(row int, v []int64) error {
		r := Request{ID: v[0], PromptID: v[1], NumPrefillTokens: v[2], NumDecodeTokens: v[3]}
		switch {
		case r.ID < 0:
			return rowErr(lp, row, "request_id", "%d is negative (expected >= 0)", r.ID)
		case len(reqs) > 0 && r.ID <= reqs[len(reqs)-1].ID:
			return rowErr(lp, row, "request_id", "%d after %d (expected unique ids in increasing order)", r.ID, reqs[len(reqs)-1].ID)
		case r.PromptID < 0:
			return rowErr(lp, row, "prompt_id", "%d is negative (expected >= 0)", r.PromptID)
		case r.NumPrefillTokens < 1:
			return rowErr(lp, row, "num_prefill_tokens", "%d (expected >= 1)", r.NumPrefillTokens)
		case r.NumDecodeTokens < 1:
			return rowErr(lp, row, "num_decode_tokens", "%d (expected >= 1: every request yields a first token)", r.NumDecodeTokens)
		}
		reqs = append(reqs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	ip := filepath.Join(dir, TraceIntervalsFile)
	n := 0
	var arrival int64
	err = scanInts(ip, TraceIntervalsColumns, func(row int, v []int64) error {
		if n >= len(reqs) {
			return rowErr(ip, row, "request_id", "%d has no row in %s (expected the same requests in both files)", v[0], TraceLengthsFile)
		}
		r := &reqs[n]
		switch {
		case v[0] != r.ID:
			return rowErr(ip, row, "request_id", "%d, but row %d of %s is request %d (expected the same ids in the same order)", v[0], row, TraceLengthsFile, r.ID)
		case v[1] < 0:
			return rowErr(ip, row, "inter_arrival_ns", "%d is negative (expected >= 0: arrivals never go back)", v[1])
		}
		arrival += v[1]
		if v[2] != arrival {
			return rowErr(ip, row, "arrival_time_ns", "%d (expected %d = cumulative sum of inter_arrival_ns)", v[2], arrival)
		}
		r.InterArrivalNs, r.ArrivalTimeNs = v[1], v[2]
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n < len(reqs) {
		return nil, rowErr(ip, n+1, "request_id", "file ends after %d rows but %s has %d requests (expected the same requests in both files)", n, TraceLengthsFile, len(reqs))
	}
	w := &Workload{Requests: reqs}
	pp := filepath.Join(dir, PromptsFile)
	if _, err := os.Stat(pp); err == nil {
		if w.Prompts, err = readPrompts(pp); err != nil {
			return nil, err
		}
		ids := make(map[int64]bool, len(w.Prompts))
		for _, p := range w.Prompts {
			ids[p.ID] = true
		}
		for i, r := range reqs {
			if !ids[r.PromptID] {
				return nil, rowErr(lp, i+1, "prompt_id", "%d has no line in %s (expected every prompt_id to have a prompt)", r.PromptID, PromptsFile)
			}
		}
	}
	mp := filepath.Join(dir, WorkloadMetaFile)
	if b, err := os.ReadFile(mp); err == nil {
		if err := json.Unmarshal(b, &w.Meta); err != nil {
			return nil, jsonErr(mp, b, err)
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	return w, nil
}

// metaRequests is workload_meta.json's num_requests, or 0 when unknown; it
// only sizes a slice, so a wrong value costs a regrow, not a wrong answer.
func metaRequests(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, WorkloadMetaFile))
	if err != nil {
		return 0
	}
	var m struct {
		N int `json:"num_requests"`
	}
	if json.Unmarshal(b, &m) != nil || m.N < 0 || m.N > 1<<26 {
		return 0
	}
	return m.N
}

func readPrompts(path string) ([]Prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
	var out []Prompt
	seen := map[int64]int{}
	for line := 1; sc.Scan(); line++ {
		var p struct {
			ID   *int64  `json:"prompt_id"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return nil, &Error{File: path, Row: line, Msg: fmt.Sprintf("not a JSON object: %v", err)}
		}
		if p.ID == nil || p.Text == nil {
			return nil, &Error{File: path, Row: line, Msg: `expected {"prompt_id": <int>, "text": <string>}`}
		}
		if prev, dup := seen[*p.ID]; dup {
			return nil, &Error{File: path, Row: line, Column: "prompt_id", Msg: fmt.Sprintf("%d already on line %d (expected unique ids)", *p.ID, prev)}
		}
		seen[*p.ID] = line
		out = append(out, Prompt{ID: *p.ID, Text: *p.Text})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// ValidateWorkloadDir checks a finished workload folder: ReadWorkload's rules,
// plus workload_meta.json present with schema_version, num_requests and a
// matching digest for every file it lists, and workload_id equal to the short
// workload digest.
func ValidateWorkloadDir(dir string) error {
	w, err := ReadWorkload(dir)
	if err != nil {
		return err
	}
	mp := filepath.Join(dir, WorkloadMetaFile)
	if _, err := os.Stat(mp); err != nil {
		return &Error{File: mp, Msg: "missing (expected the workload's meta; WriteWorkload writes it)"}
	}
	m := &w.Meta
	field := func(name, format string, args ...any) error {
		return &Error{File: mp, Column: name, Msg: fmt.Sprintf(format, args...)}
	}
	if m.SchemaVersion != Version {
		return field("schema_version", "%d (expected %d)", m.SchemaVersion, Version)
	}
	if m.NumRequests != len(w.Requests) {
		return field("num_requests", "%d but %s has %d requests", m.NumRequests, TraceLengthsFile, len(w.Requests))
	}
	for _, name := range []string{TraceLengthsFile, TraceIntervalsFile} {
		if _, ok := m.Digests[name]; !ok {
			return field("digests", "no entry for %s (expected sha256 of every file)", name)
		}
	}
	for name, want := range m.Digests {
		got, err := stage.FileDigest(filepath.Join(dir, name))
		if err != nil {
			return field("digests", "lists %s: %v", name, err)
		}
		if got != want {
			return field("digests", "%s has sha256 %s, meta says %s (the file changed after it was written; regenerate the workload)", name, got, want)
		}
	}
	wd, err := WorkloadDigest(dir)
	if err != nil {
		return err
	}
	if m.WorkloadID != ShortDigest(wd) {
		return field("workload_id", "%s (expected %q, the first 12 hex digits of the workload digest)", Excerpt(m.WorkloadID), ShortDigest(wd))
	}
	return nil
}
