package vidur

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"

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
}

// Convert turns Vidur's outputs into the canonical run schema.
//
// Arrival times come from the workload (integer ns); every other time comes
// from the chrome trace's batch end times (float µs of simulated time, which
// starts at 0 as the workload's clock does), rounded to the nearest ns. Token
// times are rebuilt from batches, never interpolated: a request's first token
// completes at the end of the batch in which its prefill completes (Vidur
// counts one decode token there), and each later token at the end of each
// batch that holds the request as a decode (one token). A request Vidur
// restarted after preemption prefills its prompt plus the tokens it already
// generated again; the batch that completes that re-prefill yields its next
// token, as Vidur counts it.
//
// The result is checked against Vidur's request_metrics.csv: the same
// requests and token counts, and TTFT (prefill_e2e_time) and E2E
// (request_e2e_time) within Tolerance.
func Convert(work []schema.Request, vreqs []Request, batches []Batch) (*Converted, error) {
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

	type state struct {
		target, done int64 // current (re)prefill: tokens to process, processed
		decoding     bool
	}
	st := make([]state, n)
	for i := range st {
		st[i].target = work[i].NumPrefillTokens
	}
	times := make([][]int64, n)
	for i := range times {
		times[i] = make([]int64, 0, work[i].NumDecodeTokens)
	}
	steps := make([]schema.StepMetric, 0, len(batches))
	for bi := range batches {
		b := &batches[bi]
		if b.Replica != 0 || b.Stage != 0 {
			return nil, fmt.Errorf("batch %d runs on replica %d, pipeline stage %d: gsim converts one replica without pipeline parallelism",
				b.ID, b.Replica, b.Stage)
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
			s := &st[id]
			tok := b.NumTokens[k]
			emitted := int64(len(times[id]))
			if tok <= 0 {
				return nil, fmt.Errorf("batch %d gives request %d %d tokens (expected > 0)", b.ID, id, tok)
			}
			if emitted == work[id].NumDecodeTokens {
				return nil, fmt.Errorf("batch %d holds request %d after all its %d tokens were generated", b.ID, id, emitted)
			}
			if s.decoding && tok > 1 {
				if vreqs[id].NumRestarts == 0 {
					return nil, fmt.Errorf("batch %d gives request %d %d tokens after its prefill, but Vidur reports no restart of it",
						b.ID, id, tok)
				}
				// A restart: Vidur re-prefills prompt + generated tokens.
				*s = state{target: work[id].NumPrefillTokens + emitted}
			}
			if s.decoding {
				step.NumDecodeTokens++
				step.NumDecodeRequests++
				step.NumContextTokens += work[id].NumPrefillTokens + emitted
				times[id] = append(times[id], end)
				continue
			}
			step.NumPrefillTokens += tok
			step.NumPrefillRequests++
			s.done += tok
			step.NumContextTokens += s.done
			switch {
			case s.done > s.target:
				return nil, fmt.Errorf("batch %d: request %d has processed %d prefill tokens of %d", b.ID, id, s.done, s.target)
			case s.done == s.target:
				s.decoding = true
				times[id] = append(times[id], end)
			}
		}
		steps = append(steps, step)
	}

	out := &Converted{Requests: make([]schema.RequestMetric, n), TokenTimesNs: times, Steps: steps}
	for i, w := range work {
		t := times[i]
		if int64(len(t)) != w.NumDecodeTokens {
			return nil, fmt.Errorf("request %d (vidur %d): the chrome trace yields %d tokens, expected %d "+
				"(is the trace complete? Vidur writes it at exit)", w.ID, i, len(t), w.NumDecodeTokens)
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
		v := vreqs[i]
		if d := float64(m.TTFTNs) - v.PrefillE2E*1e9; math.Abs(d) > Tolerance {
			return nil, fmt.Errorf("request %d (vidur %d): TTFT from the chrome trace is %d ns, Vidur's prefill_e2e_time is %.9f s (off by %.0f ns)",
				w.ID, i, m.TTFTNs, v.PrefillE2E, d)
		}
		if d := float64(m.CompletionTimeNs-w.ArrivalTimeNs) - v.E2E*1e9; math.Abs(d) > Tolerance {
			return nil, fmt.Errorf("request %d (vidur %d): E2E from the chrome trace is %d ns, Vidur's request_e2e_time is %.9f s (off by %.0f ns)",
				w.ID, i, m.CompletionTimeNs-w.ArrivalTimeNs, v.E2E, d)
		}
		out.Requests[i] = m
	}
	return out, nil
}

// ConvertOutput converts the Vidur outputs in dir (Vidur's own output folder,
// or a run's raw/ folder): request_metrics.csv and chrome_trace.json or
// chrome_trace.json.gz.
func ConvertOutput(dir string, work []schema.Request) (*Converted, error) {
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
	c, err := Convert(work, vreqs, batches)
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
