package vidur

import (
	"bufio"
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// Tolerance is how far gsim's ns times may drift from Vidur's own float
// seconds before the conversion is called inconsistent. Float rounding is
// far below it; a wrong request mapping or token rule is far above it.
const Tolerance = 1000 // ns

// Converted is a Vidur run in gsim's canonical schema.
type Converted struct {
	Requests []schema.RequestMetric // in workload order
	// TokenTimesNs[i] are request i's token times (token 0 first).
	TokenTimesNs [][]int64
	Steps        []schema.StepMetric // one per batch, in time order
	// Restarts is how many preemption restarts the run had.
	Restarts int64
	// PrefillCut counts the requests Vidur restarted part-way through
	// their first prefill: Vidur's own prefill_e2e_time for them ends at
	// the shortened re-prefill, before their prompt was processed, so it is
	// earlier than their first token here (docs/vidur.md).
	PrefillCut int
}

// Output is what Convert reads of a Vidur run.
type Output struct {
	Requests []Request // request_metrics.csv
	Batches  []Batch   // the chrome trace's batch stages
	// Restarts is the shim's restart log; RestartsRecorded says whether
	// there is one (a Vidur run made without gsim's shim has none, and its
	// restarts are inferred from the trace where they can be).
	Restarts         []Restart
	RestartsRecorded bool
}

// Convert turns Vidur's outputs into the canonical run schema.
//
// Arrival times come from the workload (integer ns); every other time comes
// from the chrome trace's batch end times (float µs of simulated time, which
// starts at 0 as the workload's clock does), rounded to the nearest ns. Token
// times are rebuilt from batches, never interpolated, by replaying Vidur's
// own token counter (Request.num_processed_tokens): a batch adds a request's
// chunk to it, the batch that completes a prefill adds one more (Vidur emits
// a token there), and each decode adds one. Token k of a request is done at
// the end of the batch in which the counter first passes prompt + k; so a
// request has exactly num_decode_tokens tokens, the last when Vidur
// completes it.
//
// A preemption restart (Request.restart) sets the counter to 0 and makes
// what had been processed the request's new prefill: prompt + generated
// tokens for a request preempted while decoding (vllm, sarathi), which
// yields its next token when the re-prefill completes; only the prompt
// tokens processed so far for a request preempted part-way through a
// chunked prefill (sarathi), whose remaining prompt tokens Vidur then
// processes one per iteration, as decodes. Restarts come from the shim's log
// (out.Restarts); without one they are inferred where the trace shows them
// (a request given more than one token after its prefill).
//
// The result is checked against Vidur's request_metrics.csv: the same
// requests, token counts and restart counts, prefill_e2e_time (Vidur's end
// of the request's first prefill) and request_e2e_time within Tolerance.
func Convert(work []schema.Request, out *Output) (*Converted, error) {
	c, err := convert(work, out)
	if err != nil && !out.RestartsRecorded {
		var restarted int
		for _, v := range out.Requests {
			if v.NumRestarts > 0 {
				restarted++
			}
		}
		if restarted > 0 {
			err = fmt.Errorf("%w (Vidur restarted %d requests and this output has no restart log; the chrome trace alone does not show "+
				"a restart part-way through a prefill: convert a run made through gsim's vidur kind, whose raw/ holds the shim's %s)",
				err, restarted, RawRestartsFile)
		}
	}
	return c, err
}

func convert(work []schema.Request, out *Output) (*Converted, error) {
	vreqs, batches := out.Requests, out.Batches
	n := len(work)
	if len(vreqs) != n {
		return nil, fmt.Errorf("vidur wrote %d requests, the workload has %d", len(vreqs), n)
	}
	for i, v := range vreqs {
		w := work[i]
		switch {
		case v.ID != int64(i):
			return nil, fmt.Errorf("vidur request ids are not 0..%d (found %d at position %d)", n-1, v.ID, i)
		case v.NumPrefillTokens != w.NumPrefillTokens || v.NumDecodeTokens != w.NumDecodeTokens:
			return nil, fmt.Errorf("request %d (vidur %d): vidur ran %d prefill + %d decode tokens, the workload has %d + %d "+
				"(Vidur clips prompts longer than max_tokens: raise with.max_tokens)",
				w.ID, i, v.NumPrefillTokens, v.NumDecodeTokens, w.NumPrefillTokens, w.NumDecodeTokens)
		}
	}
	restarts := slices.Clone(out.Restarts)
	slices.SortStableFunc(restarts, func(a, b Restart) int { return cmp.Compare(a.BatchID, b.BatchID) })

	// state mirrors Vidur's Request: target is num_prefill_tokens (the
	// prompt, or after a restart what had been processed), done is
	// num_processed_tokens.
	type state struct {
		target, done    int64
		prefillDone     bool
		restarts        int64
		firstPrefillEnd int64
	}
	st := make([]state, n)
	for i := range st {
		st[i] = state{target: work[i].NumPrefillTokens, firstPrefillEnd: -1}
	}
	times := make([][]int64, n)
	for i := range times {
		times[i] = make([]int64, 0, work[i].NumDecodeTokens)
	}
	restart := func(id, processed int64, before string) error {
		s := &st[id]
		if processed != s.done {
			return fmt.Errorf("restart of request %d %s: Vidur's log says it had processed %d tokens, the chrome trace gives %d",
				id, before, processed, s.done)
		}
		if s.done == 0 {
			return fmt.Errorf("restart of request %d %s: it had processed no tokens", id, before)
		}
		*s = state{target: s.done, restarts: s.restarts + 1, firstPrefillEnd: s.firstPrefillEnd}
		return nil
	}
	steps := make([]schema.StepMetric, 0, len(batches))
	ri := 0
	prevID := int64(-1)
	for bi := range batches {
		b := &batches[bi]
		if b.Replica != 0 || b.Stage != 0 {
			return nil, fmt.Errorf("batch %d runs on replica %d, pipeline stage %d: gsim converts one replica without pipeline parallelism",
				b.ID, b.Replica, b.Stage)
		}
		if b.ID <= prevID {
			return nil, fmt.Errorf("batch %d ends after batch %d: one replica's batches must run one after another", prevID, b.ID)
		}
		prevID = b.ID
		for ; ri < len(restarts) && restarts[ri].BatchID <= b.ID; ri++ {
			r := restarts[ri]
			if r.RequestID < 0 || r.RequestID >= int64(n) {
				return nil, fmt.Errorf("the restart log names request %d, which is not in the workload (0..%d)", r.RequestID, n-1)
			}
			if err := restart(r.RequestID, r.Processed, fmt.Sprintf("before batch %d", r.BatchID)); err != nil {
				return nil, err
			}
		}
		end := MicrosToNs(b.EndUs())
		step := schema.StepMetric{
			Step: int64(bi), StartNs: MicrosToNs(b.StartUs), EndNs: end,
			NumRequests: int64(len(b.RequestIDs)),
		}
		for k, id := range b.RequestIDs {
			if id < 0 || id >= int64(n) {
				return nil, fmt.Errorf("batch %d holds request %d, which is not in the workload (0..%d)", b.ID, id, n-1)
			}
			s, w := &st[id], work[id]
			tok := b.NumTokens[k]
			total := w.NumPrefillTokens + w.NumDecodeTokens
			if tok <= 0 {
				return nil, fmt.Errorf("batch %d gives request %d %d tokens (expected > 0)", b.ID, id, tok)
			}
			if s.done == total {
				return nil, fmt.Errorf("batch %d holds request %d after all its %d tokens were generated", b.ID, id, w.NumDecodeTokens)
			}
			if s.prefillDone && tok > 1 {
				if out.RestartsRecorded {
					return nil, fmt.Errorf("batch %d gives request %d %d tokens after its prefill, and Vidur's log records no restart of it",
						b.ID, id, tok)
				}
				if s.restarts >= vreqs[id].NumRestarts {
					return nil, fmt.Errorf("batch %d gives request %d %d tokens after its prefill, but Vidur reports no (further) restart of it",
						b.ID, id, tok)
				}
				// Inferred: a request restarted while decoding re-prefills
				// everything it had processed.
				if err := restart(id, s.done, fmt.Sprintf("before batch %d (inferred)", b.ID)); err != nil {
					return nil, err
				}
			}
			if s.prefillDone {
				step.NumDecodeTokens++
				step.NumDecodeRequests++
				step.NumContextTokens += s.done
				s.done++
			} else {
				step.NumPrefillTokens += tok
				step.NumPrefillRequests++
				s.done += tok
				step.NumContextTokens += s.done
				switch {
				case s.done > s.target:
					return nil, fmt.Errorf("batch %d: request %d has processed %d prefill tokens of %d", b.ID, id, s.done, s.target)
				case s.done == s.target:
					s.prefillDone = true
					s.done++ // Vidur counts a token when a prefill completes
					if s.firstPrefillEnd < 0 {
						s.firstPrefillEnd = end
					}
				}
			}
			if s.done > total {
				return nil, fmt.Errorf("batch %d: request %d has processed %d tokens of %d", b.ID, id, s.done, total)
			}
			if s.done-w.NumPrefillTokens > int64(len(times[id])) {
				times[id] = append(times[id], end)
			}
		}
		steps = append(steps, step)
	}
	if ri < len(restarts) {
		r := restarts[ri]
		return nil, fmt.Errorf("the restart log has a restart of request %d before batch %d, after the chrome trace's last batch (%d)",
			r.RequestID, r.BatchID, prevID)
	}

	conv := &Converted{Requests: make([]schema.RequestMetric, n), TokenTimesNs: times, Steps: steps}
	for i, w := range work {
		t := times[i]
		if int64(len(t)) != w.NumDecodeTokens {
			return nil, fmt.Errorf("request %d (vidur %d): the chrome trace yields %d tokens, expected %d "+
				"(is the trace complete? Vidur writes it at exit)", w.ID, i, len(t), w.NumDecodeTokens)
		}
		v, s := vreqs[i], st[i]
		if s.restarts != v.NumRestarts {
			return nil, fmt.Errorf("request %d (vidur %d): Vidur reports %d restarts, the conversion saw %d", w.ID, i, v.NumRestarts, s.restarts)
		}
		conv.Restarts += s.restarts
		if s.firstPrefillEnd != t[0] {
			conv.PrefillCut++
		}
		m := schema.RequestMetric{
			RequestID:             w.ID,
			ArrivalTimeNs:         w.ArrivalTimeNs,
			FirstTokenTimeNs:      t[0],
			TTFTNs:                t[0] - w.ArrivalTimeNs,
			CompletionTimeNs:      t[len(t)-1],
			NumPrefillTokens:      w.NumPrefillTokens,
			NumDecodeTokens:       w.NumDecodeTokens,
			NumDecodeTokensActual: int64(len(t)),
			Status:                schema.StatusOK,
		}
		if d := float64(s.firstPrefillEnd-w.ArrivalTimeNs) - v.PrefillE2E*1e9; math.Abs(d) > Tolerance {
			return nil, fmt.Errorf("request %d (vidur %d): its first prefill ends %d ns after arrival in the chrome trace, Vidur's prefill_e2e_time is %.9f s (off by %.0f ns)",
				w.ID, i, s.firstPrefillEnd-w.ArrivalTimeNs, v.PrefillE2E, d)
		}
		if d := float64(m.CompletionTimeNs-w.ArrivalTimeNs) - v.E2E*1e9; math.Abs(d) > Tolerance {
			return nil, fmt.Errorf("request %d (vidur %d): E2E from the chrome trace is %d ns, Vidur's request_e2e_time is %.9f s (off by %.0f ns)",
				w.ID, i, m.CompletionTimeNs-w.ArrivalTimeNs, v.E2E, d)
		}
		conv.Requests[i] = m
	}
	return conv, nil
}

// ReadOutput reads the Vidur outputs in dir (Vidur's own output folder, or
// a run's raw/ folder): request_metrics.csv, chrome_trace.json or
// chrome_trace.json.gz, and the shim's restarts.csv when there is one.
func ReadOutput(dir string) (*Output, error) {
	vreqs, err := ReadRequests(filepath.Join(dir, VidurRequestMetricsFile))
	if err != nil {
		return nil, err
	}
	trace := filepath.Join(dir, ChromeTraceFile)
	if _, err := os.Stat(trace); err != nil {
		trace = filepath.Join(dir, RawChromeTraceFile)
	}
	batches, err := ReadChromeTrace(trace)
	if err != nil {
		return nil, err
	}
	out := &Output{Requests: vreqs, Batches: batches}
	rpath := filepath.Join(dir, RawRestartsFile)
	if _, err := os.Stat(rpath); err == nil {
		if out.Restarts, err = ReadRestarts(rpath); err != nil {
			return nil, err
		}
		out.RestartsRecorded = true
	}
	return out, nil
}

// ConvertOutput converts the Vidur outputs in dir (see ReadOutput).
func ConvertOutput(dir string, work []schema.Request) (*Converted, error) {
	out, err := ReadOutput(dir)
	if err != nil {
		return nil, err
	}
	c, err := Convert(work, out)
	if err != nil {
		return nil, fmt.Errorf("convert vidur output %s: %w", dir, err)
	}
	return c, nil
}

// WriteRun writes the canonical run files (request_metrics.csv,
// token_metrics.csv, step_metrics.csv, run_meta.json) into dir.
func (c *Converted) WriteRun(dir string, meta *schema.RunMeta) error {
	if err := schema.WriteRequestMetrics(filepath.Join(dir, schema.RequestMetricsFile), c.Requests); err != nil {
		return err
	}
	if err := c.writeTokens(filepath.Join(dir, schema.TokenMetricsFile)); err != nil {
		return err
	}
	if err := schema.WriteStepMetrics(filepath.Join(dir, schema.StepMetricsFile), c.Steps); err != nil {
		return err
	}
	return schema.WriteRunMeta(filepath.Join(dir, schema.RunMetaFile), meta)
}

func (c *Converted) writeTokens(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := schema.NewTokenMetricsWriter(bw)
	for i, r := range c.Requests {
		prev := int64(0)
		for k, t := range c.TokenTimesNs[i] {
			lat := int64(0)
			if k > 0 {
				lat = t - prev
			}
			if err := tw.Write(schema.TokenMetric{RequestID: r.RequestID, TokenIndex: int64(k), TokenTimeNs: t, TokenLatencyNs: lat}); err != nil {
				f.Close()
				return fmt.Errorf("write %s: %w", path, err)
			}
			prev = t
		}
	}
	if err := tw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
