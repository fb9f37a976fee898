package schema

import (
	"fmt"
	"path/filepath"
)

// Run is a run folder in memory: what a real bench, the embedded simulator
// or Vidur produced for one workload.
type Run struct {
	Meta     *RunMeta
	Requests []RequestMetric
	Tokens   []TokenMetric
	Steps    []StepMetric // nil when the engine wrote no step_metrics.csv
}

// ReadRun reads a run folder and cross-checks its files (see checkRunTokens).
func ReadRun(dir string) (*Run, error) {
	meta, err := ReadRunMeta(filepath.Join(dir, RunMetaFile))
	if err != nil {
		return nil, err
	}
	rp := filepath.Join(dir, RequestMetricsFile)
	reqs, err := ReadRequestMetrics(rp)
	if err != nil {
		return nil, err
	}
	tp := filepath.Join(dir, TokenMetricsFile)
	toks, seq, err := readTokens(tp)
	if err != nil {
		return nil, err
	}
	if err := checkRunTokens(rp, seq, summarize(reqs)); err != nil {
		return nil, err
	}
	run := &Run{Meta: meta, Requests: reqs, Tokens: toks}
	sp := filepath.Join(dir, StepMetricsFile)
	if Exists(sp) {
		if run.Steps, err = ReadStepMetrics(sp); err != nil {
			return nil, err
		}
	}
	return run, nil
}

// ValidateRun checks a run folder like ReadRun does, streaming the token file
// instead of holding it. Tables a RunWriter of this process checked while
// writing them, and that have not changed since, are not read again.
func ValidateRun(dir string) error {
	if _, err := ReadRunMeta(filepath.Join(dir, RunMetaFile)); err != nil {
		return err
	}
	if takeValidated(dir) {
		return nil
	}
	rp := filepath.Join(dir, RequestMetricsFile)
	// Only what the token cross-check needs is kept of each request row.
	var reqs []reqSummary
	row := 0
	err := ScanRequestMetrics(rp, func(m RequestMetric) error {
		row++
		reqs = append(reqs, summaryOf(&m, row))
		return nil
	})
	if err != nil {
		return err
	}
	tp := filepath.Join(dir, TokenMetricsFile)
	seq, err := scanTokens(tp, nil)
	if err != nil {
		return err
	}
	if err := checkRunTokens(rp, seq, reqs); err != nil {
		return err
	}
	sp := filepath.Join(dir, StepMetricsFile)
	if Exists(sp) {
		if _, err := ReadStepMetrics(sp); err != nil {
			return err
		}
	}
	return nil
}

// reqSummary is what the token cross-check needs of a request row, so a
// writer can keep it for millions of requests.
type reqSummary struct {
	id, actual, first, completion int64
	row                           int
	ok                            bool
}

func summarize(reqs []RequestMetric) []reqSummary {
	out := make([]reqSummary, len(reqs))
	for i := range reqs {
		out[i] = summaryOf(&reqs[i], i+1)
	}
	return out
}

func summaryOf(m *RequestMetric, row int) reqSummary {
	return reqSummary{id: m.RequestID, actual: m.NumDecodeTokensActual, first: m.FirstTokenTimeNs,
		completion: m.CompletionTimeNs, row: row, ok: m.Status == StatusOK}
}

// checkRunTokens ties request_metrics.csv to the token file: every token
// belongs to a listed request; each request's token count equals
// num_decode_tokens_actual; for ok requests token 0's time is
// first_token_time_ns and the last token's time is completion_time_ns; for
// failed requests the recorded first token, when there is one, matches too.
func checkRunTokens(reqFile string, seq *tokenSeq, reqs []reqSummary) error {
	for i := range reqs {
		if err := checkReqTokens(reqFile, seq, &reqs[i]); err != nil {
			return err
		}
	}
	return checkOrphans(reqFile, seq)
}

// checkReqTokens checks one request row against its tokens and marks the
// request listed.
func checkReqTokens(reqFile string, seq *tokenSeq, m *reqSummary) error {
	tokFile := filepath.Base(seq.file)
	st := seq.get(m.id)
	var count int64
	if st != nil {
		st.listed = true
		count = int64(st.count)
	}
	if count != m.actual {
		return rowErr(reqFile, m.row, "num_decode_tokens_actual", "%d for request %d, but %s has %d tokens for it (expected equal)",
			m.actual, m.id, tokFile, count)
	}
	if count == 0 {
		return nil
	}
	if m.ok || m.first >= 0 {
		if st.first != m.first {
			return rowErr(reqFile, m.row, "first_token_time_ns", "%d for request %d, but its token 0 in %s (row %d) is at %d (expected equal)",
				m.first, m.id, tokFile, st.firstRow, st.first)
		}
	}
	if m.ok && st.last != m.completion {
		return rowErr(reqFile, m.row, "completion_time_ns", "%d for request %d, but its last token in %s is at %d (expected equal)",
			m.completion, m.id, tokFile, st.last)
	}
	return nil
}

// checkOrphans reports the earliest token of a request no row lists.
func checkOrphans(reqFile string, seq *tokenSeq) error {
	// Report the earliest orphan row so the message does not depend on map order.
	bad, badRow := int64(0), int64(0)
	seq.each(func(id int64, st *tokenState) {
		if !st.listed && (badRow == 0 || st.firstRow < badRow) {
			bad, badRow = id, st.firstRow
		}
	})
	if badRow > 0 {
		return rowErr(seq.file, int(badRow), "request_id", "%d is not in %s (expected tokens only for listed requests)", bad, filepath.Base(reqFile))
	}
	return nil
}

// MatchWorkload checks that run was made on workload w, whose digest is
// digest (WorkloadDigest of its folder): the run's workload_digest equals it,
// every workload request appears exactly once, and each row's token counts
// are the workload's. Arrival times are not compared: a real run records when
// a request was actually sent, which may lag the schedule.
func MatchWorkload(runDir string, run *Run, w *Workload, digest string) error {
	if run.Meta != nil && run.Meta.WorkloadDigest != digest {
		return &Error{File: filepath.Join(runDir, RunMetaFile), Column: "workload_digest",
			Msg: fmt.Sprintf("%s, but the workload's digest is %s (the run was made on another workload; rerun it on this one)",
				run.Meta.WorkloadDigest, digest)}
	}
	rp := filepath.Join(runDir, RequestMetricsFile)
	byID := make(map[int64]*Request, len(w.Requests))
	for i := range w.Requests {
		byID[w.Requests[i].ID] = &w.Requests[i]
	}
	for i, m := range run.Requests {
		q, ok := byID[m.RequestID]
		switch {
		case !ok:
			return rowErr(rp, i+1, "request_id", "%d is not in the workload", m.RequestID)
		case m.NumPrefillTokens != q.NumPrefillTokens:
			return rowErr(rp, i+1, "num_prefill_tokens", "%d for request %d, the workload says %d", m.NumPrefillTokens, m.RequestID, q.NumPrefillTokens)
		case m.NumDecodeTokens != q.NumDecodeTokens:
			return rowErr(rp, i+1, "num_decode_tokens", "%d for request %d, the workload says %d", m.NumDecodeTokens, m.RequestID, q.NumDecodeTokens)
		}
	}
	if len(run.Requests) != len(w.Requests) {
		return &Error{File: rp, Msg: fmt.Sprintf("%d requests, the workload has %d (expected one row per workload request, failed ones included)",
			len(run.Requests), len(w.Requests))}
	}
	return nil
}
