package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func sampleWorkload() *Workload {
	return &Workload{
		Requests: []Request{
			{ID: 0, PromptID: 0, NumPrefillTokens: 12, NumDecodeTokens: 3, InterArrivalNs: 0, ArrivalTimeNs: 0},
			{ID: 1, PromptID: 1, NumPrefillTokens: 7, NumDecodeTokens: 2, InterArrivalNs: 250, ArrivalTimeNs: 250},
			{ID: 2, PromptID: 2, NumPrefillTokens: 1, NumDecodeTokens: 1, InterArrivalNs: 0, ArrivalTimeNs: 250},
		},
		Meta: WorkloadMeta{Model: "m", Seed: 1, Params: map[string]any{"seed": 1.0}, CreatedAt: "2026-01-01T00:00:00Z"},
	}
}

// sampleRun is a consistent run of sampleWorkload: request 2 failed before
// its first token.
func sampleRun() *Run {
	return &Run{
		Meta: &RunMeta{SchemaVersion: Version, RunID: "r", RunType: RunSim, Model: "m",
			WorkloadDigest: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		Requests: []RequestMetric{
			{RequestID: 0, ArrivalTimeNs: 0, FirstTokenTimeNs: 100, TTFTNs: 100, CompletionTimeNs: 300,
				NumPrefillTokens: 12, NumDecodeTokens: 3, NumDecodeTokensActual: 3, Status: StatusOK},
			{RequestID: 1, ArrivalTimeNs: 250, FirstTokenTimeNs: 260, TTFTNs: 10, CompletionTimeNs: 290,
				NumPrefillTokens: 7, NumDecodeTokens: 2, NumDecodeTokensActual: 2, Status: StatusOK},
			{RequestID: 2, ArrivalTimeNs: 250, FirstTokenTimeNs: -1, TTFTNs: -1, CompletionTimeNs: 400,
				NumPrefillTokens: 1, NumDecodeTokens: 1, NumDecodeTokensActual: 0, Status: StatusFailed,
				ErrorType: "timeout", ErrorMessage: "no token in 150ns, \"quoted\",\nwith comma and newline"},
		},
		Tokens: []TokenMetric{
			{0, 0, 100, 0}, {0, 1, 200, 100},
			{1, 0, 260, 0},
			{0, 2, 300, 100},
			{1, 1, 290, 30},
		},
		Steps: []StepMetric{
			{Step: 0, StartNs: 0, EndNs: 100, NumPrefillTokens: 12, NumRequests: 1, NumPrefillRequests: 1},
			{Step: 1, StartNs: 100, EndNs: 200, NumDecodeTokens: 1, NumRequests: 1, NumDecodeRequests: 1, NumContextTokens: 13},
		},
	}
}

func writeRun(t *testing.T, dir string, r *Run) {
	t.Helper()
	if err := WriteRunMeta(filepath.Join(dir, RunMetaFile), r.Meta); err != nil {
		t.Fatal(err)
	}
	if err := WriteRequestMetrics(filepath.Join(dir, RequestMetricsFile), r.Requests); err != nil {
		t.Fatal(err)
	}
	if err := WriteTokenMetrics(filepath.Join(dir, TokenMetricsFile), r.Tokens); err != nil {
		t.Fatal(err)
	}
	if r.Steps != nil {
		if err := WriteStepMetrics(filepath.Join(dir, StepMetricsFile), r.Steps); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWorkloadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w := sampleWorkload()
	w.Prompts = []Prompt{{0, "a"}, {1, "b \"q\" <x>"}, {2, "c\nd"}}
	if err := WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	if err := ValidateWorkloadDir(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadWorkload(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Requests, w.Requests) || !reflect.DeepEqual(got.Prompts, w.Prompts) {
		t.Fatalf("round trip changed the workload:\n got %+v\nwant %+v", got, w)
	}
	d, err := WorkloadDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Meta.WorkloadID != d[:12] || got.Meta.NumRequests != 3 || len(got.Meta.Digests) != 3 {
		t.Fatalf("meta not filled: %+v", got.Meta)
	}
	// The digest follows the CSVs only.
	if err := os.WriteFile(filepath.Join(dir, PromptsFile), []byte(`{"prompt_id":0,"text":"z"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d2, _ := WorkloadDigest(dir); d2 != d {
		t.Fatal("prompts changed the workload digest")
	}
}

func TestRunRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := sampleRun()
	writeRun(t, dir, want)
	if err := ValidateRun(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the run:\n got %+v\nwant %+v", got, want)
	}
	// Without step_metrics.csv, Steps is nil.
	os.Remove(filepath.Join(dir, StepMetricsFile))
	got, err = ReadRun(dir)
	if err != nil || got.Steps != nil {
		t.Fatalf("steps = %v, err = %v", got.Steps, err)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRequestIDsSparseAndDense(t *testing.T) {
	for _, ids := range [][]int64{{0, 1, 2}, {5, 1 << 40, 7, 1 << 41}, {1 << 40, 3, 1 << 40}} {
		var rows []RequestMetric
		for _, id := range ids {
			rows = append(rows, RequestMetric{RequestID: id, NumDecodeTokensActual: 1, Status: StatusOK})
		}
		path := filepath.Join(t.TempDir(), RequestMetricsFile)
		if err := WriteRequestMetrics(path, rows); err != nil {
			t.Fatal(err)
		}
		_, err := ReadRequestMetrics(path)
		dup := ids[0] == ids[len(ids)-1]
		if dup != (err != nil) {
			t.Fatalf("ids %v: err %v", ids, err)
		}
	}
}

func TestStreamingRequestWriter(t *testing.T) {
	var b strings.Builder
	w := NewRequestMetricsWriter(&b)
	if err := w.Write(RequestMetric{RequestID: 0, Status: StatusFailed, ErrorType: "x"}); err == nil {
		t.Fatal("failed row accepted without error columns")
	}
	b.Reset()
	w = NewRequestMetricsWriter(&b).IncludeErrorColumns()
	if err := w.Write(RequestMetric{RequestID: 0, Status: StatusFailed, ErrorType: "x", ErrorMessage: " lead"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := strings.Join(RequestMetricsColumns, ",") + ",error_type,error_message\n0,0,0,0,0,0,0,0,failed,x,\" lead\"\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	// An empty file still gets its header.
	var e strings.Builder
	tw := NewTokenMetricsWriter(&e)
	if err := tw.Flush(); err != nil || e.String() != strings.Join(TokenMetricsColumns, ",")+"\n" {
		t.Fatalf("empty token file %q, %v", e.String(), err)
	}
}

func TestMatchWorkload(t *testing.T) {
	wdir := t.TempDir()
	w := sampleWorkload()
	if err := WriteWorkload(wdir, w); err != nil {
		t.Fatal(err)
	}
	digest, _ := WorkloadDigest(wdir)
	mk := func(edit func(r *Run)) *Run {
		r := sampleRun()
		r.Meta.WorkloadDigest = digest
		edit(r)
		return r
	}
	for _, c := range []struct {
		name string
		run  *Run
		col  string
		msg  string
	}{
		{"ok", mk(func(*Run) {}), "", ""},
		{"digest", mk(func(r *Run) { r.Meta.WorkloadDigest = strings.Repeat("0", 64) }), "workload_digest", "another workload"},
		{"unknown id", mk(func(r *Run) { r.Requests[1].RequestID = 9 }), "request_id", "not in the workload"},
		{"prefill", mk(func(r *Run) { r.Requests[0].NumPrefillTokens = 11 }), "num_prefill_tokens", "workload says 12"},
		{"decode", mk(func(r *Run) { r.Requests[1].NumDecodeTokens = 5 }), "num_decode_tokens", "workload says 2"},
		{"missing", mk(func(r *Run) { r.Requests = r.Requests[:2] }), "", "2 requests, the workload has 3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := MatchWorkload("run", c.run, w, digest)
			if c.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			se, ok := AsError(err)
			if !ok || se.Column != c.col || !strings.Contains(se.Msg, c.msg) {
				t.Fatalf("got %v, want column %q msg %q", err, c.col, c.msg)
			}
		})
	}
}

func TestTokenReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenMetricsFile)
	if err := os.WriteFile(path, []byte(goodToks), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadTokenMetrics(path)
	if err != nil || len(rows) != 5 || rows[4] != (TokenMetric{1, 1, 290, 30}) {
		t.Fatalf("rows %v, err %v", rows, err)
	}
	n := 0
	stop := errors.New("stop")
	err = ScanTokenMetrics(path, func(TokenMetric) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("scan did not stop at the callback's error: n=%d err=%v", n, err)
	}
	if _, err := ReadTokenMetrics(filepath.Join(t.TempDir(), "none.csv")); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
	long := tokHeader + "\n" + strings.Repeat("1", readBufSize+10) + "\n"
	os.WriteFile(path, []byte(long), 0o644)
	_, err = ReadTokenMetrics(path)
	if se, ok := AsError(err); !ok || se.Row != 1 || !strings.Contains(se.Msg, "line longer than") {
		t.Fatalf("long line: %v", err)
	}
}

func TestRunMissingFiles(t *testing.T) {
	for _, name := range []string{RunMetaFile, RequestMetricsFile, TokenMetricsFile} {
		dir := writeRunFiles(t, nil)
		os.Remove(filepath.Join(dir, name))
		if err := ValidateRun(dir); !os.IsNotExist(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v", name, err)
		}
	}
}

func TestTokenSequencesDenseAndSparseIDs(t *testing.T) {
	big := int64(1) << 40
	tests := []struct {
		name    string
		rows    []TokenMetric
		wantErr string
	}{
		{"interleaved dense and sparse", []TokenMetric{
			{3, 0, 10, 0}, {big, 0, 11, 0}, {3, 1, 15, 5}, {big, 1, 20, 9}, {0, 0, 21, 0}}, ""},
		{"sparse id skips an index", []TokenMetric{{big, 0, 10, 0}, {3, 0, 10, 0}, {big, 2, 20, 10}}, "expected 1"},
		{"dense id goes back in time", []TokenMetric{{7, 0, 10, 0}, {big, 0, 10, 0}, {7, 1, 5, -5}}, "before the previous token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), TokenMetricsFile)
			if err := WriteTokenMetrics(path, tc.rows); err != nil {
				t.Fatal(err)
			}
			seq, err := scanTokens(path, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				seq.each(func(int64, *tokenState) { n++ })
				if n != 3 || seq.get(big).count != 2 || seq.get(3).last != 15 || seq.get(0).count != 1 {
					t.Fatalf("%d states, %+v %+v %+v", n, seq.get(big), seq.get(3), seq.get(0))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}
