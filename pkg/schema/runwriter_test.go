package schema

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writerRun(t *testing.T, dir string, reqs []RequestMetric, toks []TokenMetric, steps []StepMetric, reqFirst bool) error {
	t.Helper()
	w, err := NewRunWriter(dir, RunWriterOptions{Steps: steps != nil, Requests: len(reqs)})
	if err != nil {
		t.Fatal(err)
	}
	if reqFirst {
		for _, r := range reqs {
			if err := w.Request(r); err != nil {
				w.Abort()
				return err
			}
		}
	}
	for _, m := range toks {
		if err := w.Token(m); err != nil {
			w.Abort()
			return err
		}
	}
	if !reqFirst {
		for _, r := range reqs {
			if err := w.Request(r); err != nil {
				w.Abort()
				return err
			}
		}
	}
	for _, s := range steps {
		if err := w.Step(s); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

func smallRun() ([]RequestMetric, []TokenMetric, []StepMetric) {
	reqs := []RequestMetric{
		{RequestID: 0, ArrivalTimeNs: 0, FirstTokenTimeNs: 10, TTFTNs: 10, CompletionTimeNs: 30, NumPrefillTokens: 5, NumDecodeTokens: 3, NumDecodeTokensActual: 3, Status: StatusOK},
		{RequestID: 1, ArrivalTimeNs: 5, FirstTokenTimeNs: 20, TTFTNs: 15, CompletionTimeNs: 30, NumPrefillTokens: 4, NumDecodeTokens: 2, NumDecodeTokensActual: 2, Status: StatusOK},
	}
	toks := []TokenMetric{{0, 0, 10, 0}, {0, 1, 20, 10}, {1, 0, 20, 0}, {0, 2, 30, 10}, {1, 1, 30, 10}}
	steps := []StepMetric{
		{Step: 0, StartNs: 0, EndNs: 10, NumPrefillTokens: 5, NumRequests: 1, NumPrefillRequests: 1},
		{Step: 1, StartNs: 10, EndNs: 20, NumPrefillTokens: 4, NumDecodeTokens: 1, NumRequests: 2, NumPrefillRequests: 1, NumDecodeRequests: 1},
		{Step: 2, StartNs: 20, EndNs: 30, NumDecodeTokens: 2, NumRequests: 2, NumDecodeRequests: 2},
	}
	return reqs, toks, steps
}

// What a RunWriter writes reads back row for row, in either order of
// request and token rows, and passes ValidateRun without being reread.
func TestRunWriterRoundTrip(t *testing.T) {
	for _, reqFirst := range []bool{false, true} {
		dir := t.TempDir()
		reqs, toks, steps := smallRun()
		if err := writerRun(t, dir, reqs, toks, steps, reqFirst); err != nil {
			t.Fatal(err)
		}
		if err := WriteRunMeta(filepath.Join(dir, RunMetaFile), &RunMeta{RunType: RunSim, Model: "m", WorkloadDigest: strings.Repeat("ab", 32)}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{TokenMetricsFile, StepMetricsFile} {
			if Exists(filepath.Join(dir, f)) != true || statExists(filepath.Join(dir, f)) {
				t.Fatalf("%s: want the Parquet form only", f)
			}
		}
		run, err := ReadRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(run.Requests, reqs) || !reflect.DeepEqual(run.Tokens, toks) || !reflect.DeepEqual(run.Steps, steps) {
			t.Fatalf("read back %+v %+v %+v", run.Requests, run.Tokens, run.Steps)
		}
		if !takeValidated(dir) && !reqFirst {
			// ReadRun does not consume the record; the writer made one.
			t.Fatal("the writer did not record its folder as validated")
		}
	}
}

func TestValidateRunRereadsWhatChanged(t *testing.T) {
	dir := t.TempDir()
	reqs, toks, steps := smallRun()
	if err := writerRun(t, dir, reqs, toks, steps, false); err != nil {
		t.Fatal(err)
	}
	WriteRunMeta(filepath.Join(dir, RunMetaFile), &RunMeta{RunType: RunSim, Model: "m", WorkloadDigest: strings.Repeat("ab", 32)})
	// Break the request file after the writer closed it: ValidateRun must
	// notice (the file changed) and read it.
	p := filepath.Join(dir, RequestMetricsFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), ",30,5,3,3,ok", ",31,5,3,3,ok", 1)), 0o644)
	os.Chtimes(p, time.Now(), time.Now().Add(2*time.Second))
	err := ValidateRun(dir)
	if err == nil || !strings.Contains(err.Error(), "completion_time_ns") {
		t.Fatalf("ValidateRun after an edit: %v", err)
	}
}

// Bad rows are refused while writing, naming the file, row and column.
func TestRunWriterRefusesBadRows(t *testing.T) {
	reqs, toks, steps := smallRun()
	badTok := append([]TokenMetric(nil), toks...)
	badTok[1].TokenIndex = 2
	badReq := append([]RequestMetric(nil), reqs...)
	badReq[1].NumDecodeTokensActual = 3
	badStep := append([]StepMetric(nil), steps...)
	badStep[2].StartNs = 5
	for _, c := range []struct {
		name     string
		reqs     []RequestMetric
		toks     []TokenMetric
		steps    []StepMetric
		reqFirst bool
		want     string
	}{
		{"token index", reqs, badTok, steps, false, "token_metrics.parquet: row 2, column token_index: 2 for request 0 (expected 1"},
		{"token count", badReq, toks, steps, false, "request_metrics.csv: row 2 (line 3), column num_decode_tokens_actual: 3 for request 1, but token_metrics.parquet has 2"},
		{"request before too few tokens", badReq, toks, steps, true, "num_decode_tokens_actual: 3 for request 1"},
		{"step order", reqs, toks, badStep, false, "step_metrics.parquet: row 3, column start_ns"},
		{"orphan token", reqs[:1], toks, steps, false, "token_metrics.parquet: row 3, column request_id: 1 is not in request_metrics.csv"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			err := writerRun(t, dir, c.reqs, c.toks, c.steps, c.reqFirst)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if takeValidated(dir) {
				t.Fatal("a refused folder was recorded as validated")
			}
		})
	}
}

func TestTableForms(t *testing.T) {
	dir := t.TempDir()
	reqs, toks, steps := smallRun()
	if err := writerRun(t, dir, reqs, toks, steps, false); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, TokenMetricsFile)
	if p, pq, err := TablePath(csv); err != nil || !pq || p != filepath.Join(dir, TokenMetricsParquet) {
		t.Fatalf("TablePath = %s %v %v", p, pq, err)
	}
	// Both forms at once is ambiguous, and said so.
	if err := WriteTokenMetrics(csv, toks); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenMetrics(csv); err == nil || !strings.Contains(err.Error(), "token_metrics.csv is here too") {
		t.Fatalf("two forms: %v", err)
	}
	os.Remove(csv)
	// A damaged Parquet file is an error naming it.
	pq := filepath.Join(dir, TokenMetricsParquet)
	b, _ := os.ReadFile(pq)
	os.WriteFile(pq, b[:len(b)/2], 0o644)
	if _, err := ReadTokenMetrics(csv); err == nil || !strings.Contains(err.Error(), "token_metrics.parquet: not a readable Parquet file") {
		t.Fatalf("cut Parquet file: %v", err)
	}
	// A Parquet file of the wrong table names the column.
	os.Remove(pq)
	os.Rename(filepath.Join(dir, StepMetricsParquet), pq)
	if _, err := ReadTokenMetrics(csv); err == nil || !strings.Contains(err.Error(), "column") {
		t.Fatalf("steps read as tokens: %v", err)
	}
}

// A token after its request row was checked is one too many.
func TestRunWriterTokenAfterItsRequest(t *testing.T) {
	reqs, toks, _ := smallRun()
	w, err := NewRunWriter(t.TempDir(), RunWriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range toks {
		w.Token(m)
	}
	w.Request(reqs[0])
	w.Request(reqs[1])
	w.Token(TokenMetric{0, 3, 40, 10})
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "token_metrics.parquet: row 6, column request_id: 0 already had its 3 tokens checked") {
		t.Fatalf("error %v", err)
	}
}

// replay copies recorded tables with CopyPlain: a Parquet table is copied as
// it is, under its Parquet name.
func TestCopyPlainKeepsParquet(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	reqs, toks, steps := smallRun()
	if err := writerRun(t, src, reqs, toks, steps, false); err != nil {
		t.Fatal(err)
	}
	if err := CopyPlain(filepath.Join(src, TokenMetricsFile), filepath.Join(dst, TokenMetricsFile)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTokenMetrics(filepath.Join(dst, TokenMetricsFile))
	if err != nil || !reflect.DeepEqual(got, toks) || statExists(filepath.Join(dst, TokenMetricsFile)) {
		t.Fatalf("copied %v, %v", got, err)
	}
}

// Token rows handed over a step at a time, written in place into
// TokenBuffer's slice or copied from the caller's, with request rows
// between steps, are the same rows as one Token call each: across the
// pipe's batch boundaries, for steps larger than a batch, and when a step
// leaves its slice unused.
func TestRunWriterTokenBatches(t *testing.T) {
	const reqs = 40000 // more than any step's width: a request's tokens are in different steps
	var steps [][]TokenMetric
	count := make([]int64, reqs)
	last := make([]int64, reqs)
	now := int64(0)
	for s := 0; s < 40; s++ {
		now += 1000
		var step []TokenMetric
		width := 1000 + 97*s
		if s == 7 {
			width = tokenBatch + 5 // a step larger than a pipe batch
		}
		for k := 0; k < width; k++ {
			id := (s*31 + k) % reqs
			lat := int64(0)
			if count[id] > 0 {
				lat = now - last[id]
			}
			step = append(step, TokenMetric{RequestID: int64(id), TokenIndex: count[id], TokenTimeNs: now, TokenLatencyNs: lat})
			count[id]++
			last[id] = now
		}
		steps = append(steps, step)
	}
	var want []TokenMetric
	for _, st := range steps {
		want = append(want, st...)
	}
	for _, inPlace := range []bool{true, false} {
		dir := t.TempDir()
		w, err := NewRunWriter(dir, RunWriterOptions{Requests: reqs})
		if err != nil {
			t.Fatal(err)
		}
		first := make([]int64, reqs)
		seen := make([]int64, reqs)
		for s, st := range steps {
			var buf []TokenMetric
			if inPlace {
				buf = w.TokenBuffer(len(st))
			}
			if s%5 == 4 {
				buf = w.TokenBuffer(len(st)) // asked for and left unused
				buf = nil
			}
			buf = append(buf, st...)
			if err := w.Tokens(buf); err != nil {
				t.Fatal(err)
			}
			for _, m := range st {
				if seen[m.RequestID] == 0 {
					first[m.RequestID] = m.TokenTimeNs
				}
				seen[m.RequestID]++
			}
		}
		for id := range seen {
			if seen[id] == 0 {
				continue
			}
			if err := w.Request(RequestMetric{RequestID: int64(id), FirstTokenTimeNs: first[id], TTFTNs: first[id], CompletionTimeNs: last[id],
				NumPrefillTokens: 1, NumDecodeTokens: seen[id], NumDecodeTokensActual: seen[id], Status: StatusOK}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatalf("in place %v: %v", inPlace, err)
		}
		got, err := ReadTokenMetrics(filepath.Join(dir, TokenMetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("in place %v: read %d rows back, wrote %d (or they differ)", inPlace, len(got), len(want))
		}
	}
}
