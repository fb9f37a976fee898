// Package engine runs the discrete-event simulation of one replica: requests
// arrive, a scheduling policy forms iterations, a predictor times them, and
// every output token, finished request and iteration is handed to a sink as
// it happens so that runs of millions of requests stream to disk.
package engine

import (
	"errors"
	"fmt"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/event"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// Sink receives the simulation's outputs in time order.
type Sink interface {
	Token(r *sched.Request, index, timeNs, latencyNs int64) error
	Request(r *sched.Request) error
	Step(step, startNs, endNs int64, s sched.Shape) error
}

// TokenBatchSink is a Sink that also takes an iteration's tokens at once
// (all at the iteration's end time, in emission order); the engine hands
// them over that way when the sink offers it, instead of a call per token.
// TokenBuffer gives the slice to append them to (room for n, at most one
// per request of the iteration), so a sink can have them written in place.
type TokenBatchSink interface {
	TokenBuffer(n int) []schema.TokenMetric
	Tokens(toks []schema.TokenMetric) error
}

// Options tune a run.
type Options struct {
	// OnBatch, when set, sees every iteration as it starts (tests use it to
	// check batch limits).
	OnBatch func(now int64, b *sched.Batch)
	// Progress, when set, is called every ProgressEvery completed requests.
	Progress      func(done, total int)
	ProgressEvery int
	// Interrupt, when set, is polled every few thousand events; a non-nil
	// error stops the run with that error.
	Interrupt func() error
}

// Result summarises a run.
type Result struct {
	Requests   int
	Steps      int64
	EndNs      int64
	PeakBlocks int64
	Restarts   int64
	TokensOut  int64
	BusyNs     int64 // time inside iterations
}

// ErrStuck means requests remain that the policy will never schedule.
var ErrStuck = errors.New("simulation stuck")

// Run simulates reqs (sorted by arrival time) to completion.
func Run(reqs []schema.Request, s sched.Scheduler, p predict.Predictor, sink Sink, opt Options) (Result, error) {
	var res Result
	if len(reqs) == 0 {
		return res, nil
	}
	for i := range reqs {
		r := &reqs[i]
		if r.NumDecodeTokens < 1 || r.NumPrefillTokens < 1 {
			return res, fmt.Errorf("request %d (row %d of trace_lengths.csv): needs at least 1 prompt and 1 decode token, has %d and %d",
				r.ID, i+2, r.NumPrefillTokens, r.NumDecodeTokens)
		}
		if i > 0 && r.ArrivalTimeNs < reqs[i-1].ArrivalTimeNs {
			return res, fmt.Errorf("request %d (row %d of trace_intervals.csv): arrival %d ns is before the previous request's %d ns; arrivals must not decrease",
				r.ID, i+2, r.ArrivalTimeNs, reqs[i-1].ArrivalTimeNs)
		}
	}
	// Request state lives in chunks so memory grows with arrivals and
	// pointers stay valid; a chunk whose requests have all finished is let
	// go, so a long trace holds only the chunks still in flight (a million
	// requests' state is 150 MB).
	const chunk = 4096
	var store [][]sched.Request
	var doneIn []int // finished requests per chunk
	var q event.Queue
	q.Push(reqs[0].ArrivalTimeNs, event.Arrival, 0)
	nextArrival := 1
	var (
		batch           sched.Batch
		running         bool
		schedulePending bool
		batchStart      int64
		done            int
		emitErr         error
	)
	batchSink, batched := sink.(TokenBatchSink)
	var stepToks []schema.TokenMetric
	emit := func(r *sched.Request, idx, prev int64) {
		if emitErr != nil {
			return
		}
		lat := int64(0)
		if idx > 0 {
			lat = q.Now() - prev
		}
		res.TokensOut++
		if batched {
			stepToks = append(stepToks, schema.TokenMetric{RequestID: r.ID, TokenIndex: idx, TokenTimeNs: q.Now(), TokenLatencyNs: lat})
			return
		}
		emitErr = sink.Token(r, idx, q.Now(), lat)
	}
	var polls int
	for {
		e, ok := q.Pop()
		if !ok {
			break
		}
		if polls++; opt.Interrupt != nil && polls&4095 == 0 {
			if err := opt.Interrupt(); err != nil {
				return res, err
			}
		}
		now := e.Time
		switch e.Class {
		case event.Arrival:
			i := int(e.Ref)
			w := &reqs[i]
			c := i / chunk
			if len(store) <= c {
				store = append(store, make([]sched.Request, 0, chunk))
				doneIn = append(doneIn, 0)
			}
			store[c] = append(store[c], *sched.NewRequest(i, w.ID, w.ArrivalTimeNs, w.NumPrefillTokens, w.NumDecodeTokens))
			r := &store[c][len(store[c])-1]
			s.Add(r)
			if nextArrival < len(reqs) {
				q.Push(reqs[nextArrival].ArrivalTimeNs, event.Arrival, int64(nextArrival))
				nextArrival++
			}
			if !running && !schedulePending {
				q.Push(now, event.Schedule, 0)
				schedulePending = true
			}
		case event.BatchEnd:
			running = false
			res.BusyNs += now - batchStart
			if batched {
				stepToks = batchSink.TokenBuffer(len(batch.Entries))
			}
			batch.Apply(now, emit)
			if emitErr != nil {
				return res, emitErr
			}
			if len(stepToks) > 0 {
				if err := batchSink.Tokens(stepToks); err != nil {
					return res, err
				}
				stepToks = nil
			}
			if err := sink.Step(res.Steps, batchStart, now, batch.Shape()); err != nil {
				return res, err
			}
			res.Steps++
			s.Finish(&batch)
			for _, en := range batch.Entries {
				if en.Req.Done {
					if err := sink.Request(en.Req); err != nil {
						return res, err
					}
					res.Restarts += int64(en.Req.Restarts)
					done++
					if c := en.Req.Index / chunk; c < len(doneIn) {
						if doneIn[c]++; doneIn[c] == min(chunk, len(reqs)-c*chunk) {
							store[c] = nil
						}
					}
					if opt.Progress != nil && opt.ProgressEvery > 0 && done%opt.ProgressEvery == 0 {
						opt.Progress(done, len(reqs))
					}
				}
			}
			if s.Pending() && !schedulePending {
				q.Push(now+p.GapNs(), event.Schedule, 0)
				schedulePending = true
			}
		case event.Schedule:
			schedulePending = false
			if running {
				continue
			}
			batch.Reset()
			if !s.Next(now, &batch) {
				if s.Pending() && nextArrival >= len(reqs) && q.Len() == 0 {
					return res, fmt.Errorf("%w at %d ns: %d of %d requests finished and the %s policy cannot schedule the rest (a prompt larger than the KV cache or the token budget?); raise num_blocks or the batch limits",
						ErrStuck, now, done, len(reqs), s.Name())
				}
				continue
			}
			for _, en := range batch.Entries {
				if en.Req.FirstScheduledNs < 0 {
					en.Req.FirstScheduledNs = now
				}
			}
			if opt.OnBatch != nil {
				opt.OnBatch(now, &batch)
			}
			if u := s.KV().Used(); u > res.PeakBlocks {
				res.PeakBlocks = u
			}
			d := p.StepNs(&batch)
			if d <= 0 {
				return res, fmt.Errorf("predictor %s gave a non-positive step time (%d ns) for a batch of %d requests", p.Name(), d, len(batch.Entries))
			}
			batchStart = now
			running = true
			q.Push(now+d, event.BatchEnd, 0)
		}
	}
	res.Requests = len(reqs)
	res.EndNs = q.Now()
	if done != len(reqs) {
		return res, fmt.Errorf("%w: %d of %d requests finished", ErrStuck, done, len(reqs))
	}
	if u := s.KV().Used(); u != 0 {
		return res, fmt.Errorf("KV blocks leaked: %d still allocated after every request finished", u)
	}
	return res, nil
}
