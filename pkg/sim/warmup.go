package sim

import (
	"fmt"
	"sort"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/engine"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// benchWarmupDecodeCap is the real bench's cap on a warm-up request's
// output (stages/real_bench/engine.py run_one: min(decode, 64)).
const benchWarmupDecodeCap = 64

// warmupRequests mirrors the real bench's warm-up: before the measured
// replay it sends n requests at once, shaped like the workload's first
// arrivals (request i takes the lengths of arrival i mod len, its output
// capped at 64 tokens), and waits for them. Their steps capture CUDA graphs
// that the replay then finds cached.
func warmupRequests(reqs []schema.Request, n int) []schema.Request {
	if n <= 0 || len(reqs) == 0 {
		return nil
	}
	byArrival := make([]schema.Request, len(reqs))
	copy(byArrival, reqs)
	sort.SliceStable(byArrival, func(i, j int) bool {
		if byArrival[i].ArrivalTimeNs != byArrival[j].ArrivalTimeNs {
			return byArrival[i].ArrivalTimeNs < byArrival[j].ArrivalTimeNs
		}
		return byArrival[i].ID < byArrival[j].ID
	})
	out := make([]schema.Request, n)
	for i := range out {
		r := byArrival[i%len(byArrival)]
		out[i] = schema.Request{ID: int64(i), PromptID: int64(i), NumPrefillTokens: r.NumPrefillTokens,
			NumDecodeTokens: min(r.NumDecodeTokens, benchWarmupDecodeCap)}
	}
	return out
}

// warmUp runs the real bench's warm-up through a fresh copy of the
// simulated engine so that a mechanics step model starts the replay with
// the graphs the real engine had cached. It reports how many warm-up
// requests it simulated (0 when the model has no mechanics or the fitted
// engine recorded none).
func (s *setup) warmUp(p *Params, w *schema.Workload) (int, error) {
	sm, ok := s.pred.(*predict.StepModel)
	if !ok || sm.Mechanics == nil {
		return 0, nil
	}
	n := 0
	if v, ok := sm.Engine["warmup_requests"].(float64); ok {
		n = int(v)
	}
	reqs := warmupRequests(w.Requests, n)
	sc, err := sched.New(p.Scheduler, p.schedConfig(s.numBlocks))
	if err != nil {
		return 0, err
	}
	err = sm.WarmUp(func() error {
		_, err := engine.Run(reqs, sc, sm, discard{}, engine.Options{})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("simulating the bench's warm-up: %w", err)
	}
	return len(reqs), nil
}

// discard is a sink that keeps nothing (the warm-up is not measured).
type discard struct{}

func (discard) Token(*sched.Request, int64, int64, int64) error { return nil }
func (discard) Request(*sched.Request) error                    { return nil }
func (discard) Step(int64, int64, int64, sched.Shape) error     { return nil }
