package sched

import (
	"github.com/gsim-dev/gsim/pkg/sim/kv"
)

// hfStatus mirrors transformers' RequestStatus for continuous batching.
type hfStatus uint8

const (
	hfPending    hfStatus = iota // in the waiting queue
	hfPrefilling                 // admitted; part of its prompt is still to compute
	hfDecoding                   // its whole prompt has been scheduled
)

// hfSched mirrors transformers' continuous-batching schedulers as installed
// with the real bench (transformers 5.17: generation/continuous_batching/
// scheduler.py and offloading_manager.py, the version whose
// schedule_batch(token_budget, cache_budget) returns FutureRequestStates):
// each iteration walks candidates in priority order, gives each its
// remaining prompt (split at the token budget left) or one decode token,
// allocates blocks for it, and stops when a budget is spent.
//
// FIFO: running decodes first, then partly prefilled requests, then the
// waiting queue. Prefill-first: partly prefilled, then decodes, then
// waiting. While free blocks are below safety_margin × num_blocks only
// decodes (and the first request of an iteration) join.
//
// Active requests refused blocks are "starved"; after the iteration is
// formed (or when nothing could be), the newest starved requests are
// evicted until the rest fit: their blocks are freed, they go back to the
// end of the waiting queue to recompute everything they had (a soft reset;
// no CPU offload pool, transformers' default), and new requests are held
// back until a request finishes. The last active request is never evicted.
type hfSched struct {
	c            Config
	kv           *kv.Manager
	prefillFirst bool
	waiting      queue
	active       []*Request // in order of entering the active set
	activeLen    int        // live entries of active (removed ones are nil)
	running      bool
	blockNew     bool // transformers' block_new_requests
	offloads     int64
	stamp        int64 // marks requests already offered in this walk
	starved      []starvedReq
}

type starvedReq struct {
	r    *Request
	need int64
}

func newHF(c Config, m *kv.Manager, prefillFirst bool) *hfSched {
	return &hfSched{c: c, kv: m, prefillFirst: prefillFirst}
}

func (s *hfSched) Name() string {
	if s.prefillFirst {
		return "hf-cb-prefill-first"
	}
	return "hf-cb"
}

func (s *hfSched) KV() *kv.Manager { return s.kv }
func (s *hfSched) Add(r *Request) {
	r.status = hfPending
	s.waiting.pushBack(r)
}
func (s *hfSched) Pending() bool { return s.waiting.len() > 0 || s.activeLen > 0 || s.running }

// blocksNeeded is the scheduler's _allocate_blocks_if_needed: with
// occupancy = blocks × block_size − cached tokens, a request needing n new
// tokens takes (n − occupancy + 1) // block_size + 1 more blocks when its
// room is short or it holds none (one more than strictly needed when the
// tokens exactly fill the room, as the engine does).
func (s *hfSched) blocksNeeded(r *Request, n int64) int64 {
	occupancy := r.Blocks*s.c.BlockSize - r.CacheLen()
	if occupancy < n || r.Blocks == 0 {
		return (n-occupancy+1)/s.c.BlockSize + 1
	}
	return 0
}

func (s *hfSched) Next(now int64, b *Batch) bool {
	if s.running {
		return false
	}
	for {
		ok, allocFailed := s.walk(b)
		if ok {
			// Starved requests that did not make it are evicted now so the
			// next iteration has room for the rest.
			s.offload()
			s.running = true
			return true
		}
		if !allocFailed || s.offload() == 0 {
			// Nothing to run, or a full cache and nothing to evict (the
			// engine raises "No requests can be scheduled and no requests
			// can be offloaded").
			return false
		}
	}
}

// walk forms one iteration; it reports whether anything was scheduled and
// whether some request was refused blocks.
func (s *hfSched) walk(b *Batch) (scheduled, allocFailed bool) {
	tokenBudget := s.c.MaxBatchTokens
	kvBudget := s.c.MaxKVRead
	reqBudget := s.c.BatchSizeCap
	margin := s.c.SafetyMargin * float64(s.kv.NumBlocks)
	fastPath := s.c.DecodeFastPath // holds while every request has one token
	stop := false
	s.starved = s.starved[:0]
	try := func(r *Request) {
		free := s.kv.Free()
		if float64(free) < margin && len(b.Entries) > 0 && r.status != hfDecoding {
			stop = true
			return
		}
		remaining := int64(1)
		if r.status != hfDecoding {
			remaining = r.PrefillTarget - r.Processed
		}
		n := min(remaining, tokenBudget)
		read := r.CacheLen()
		if s.c.MaxKVRead > 0 && !(fastPath && n == 1) && kvBudget < read {
			return
		}
		need := s.blocksNeeded(r, n)
		if !s.kv.Alloc(need) {
			allocFailed = true
			if r.status != hfPending {
				s.starved = append(s.starved, starvedReq{r, need})
			} else if free == 0 {
				// A waiting request and a full cache: every later waiting
				// request would need blocks too.
				stop = true
			}
			return
		}
		r.Blocks += need
		r.Admitted = r.Blocks > 0
		if r.status == hfPending {
			r.seq = int64(len(s.active))
			s.active = append(s.active, r)
			s.activeLen++
		}
		// The whole remainder goes in when it fits the budget (<=);
		// transformers marks the request decoding as soon as its last
		// prompt chunk is scheduled.
		if remaining <= tokenBudget {
			r.status = hfDecoding
		} else {
			r.status = hfPrefilling
		}
		fastPath = fastPath && n == 1
		b.add(r, n)
		tokenBudget -= n
		kvBudget -= read
		reqBudget--
		if tokenBudget == 0 || (s.c.MaxKVRead > 0 && kvBudget <= 0 && !fastPath) || (s.c.BatchSizeCap > 0 && reqBudget <= 0) {
			stop = true
		}
	}
	isPrefilling := func(r *Request) bool { return r.status == hfPrefilling }
	isDecode := func(r *Request) bool { return r.status == hfDecoding }
	first, second := isDecode, isPrefilling
	if s.prefillFirst {
		first, second = isPrefilling, isDecode
	}
	// Candidates are chosen by their status before the walk: each request
	// is offered at most once.
	n := len(s.active)
	s.stamp++
	for _, want := range []func(*Request) bool{first, second} {
		for _, r := range s.active[:n] {
			if stop {
				break
			}
			if r == nil || !want(r) || r.stamp == s.stamp {
				continue
			}
			r.stamp = s.stamp
			try(r)
		}
	}
	if !s.blockNew {
		for i := 0; i < s.waiting.len() && !stop; i++ {
			r := s.waiting.at(i)
			if r.status != hfPending {
				continue // admitted earlier; removed lazily below
			}
			try(r)
		}
	}
	for s.waiting.len() > 0 && s.waiting.front().status != hfPending {
		s.waiting.popFront()
	}
	return len(b.Entries) > 0, allocFailed
}

// offload is the offloading manager's offload_requests: evict the newest
// starved requests until the others' demand fits the free blocks, never the
// last active request; requeue them oldest first at the end of the waiting
// queue. It returns how many it evicted.
func (s *hfSched) offload() int {
	free := s.kv.Free()
	var demand int64
	for _, st := range s.starved {
		demand += st.need
	}
	var victims []*Request
	starved := s.starved
	for demand > free && len(starved) > 0 && s.activeLen-len(victims) > 1 {
		st := starved[len(starved)-1]
		starved = starved[:len(starved)-1]
		victims = append(victims, st.r)
		demand -= st.need
		free += st.r.Blocks
	}
	s.starved = s.starved[:0]
	for i := len(victims) - 1; i >= 0; i-- {
		r := victims[i]
		s.active[r.seq] = nil
		s.activeLen--
		s.kv.Release(r.Blocks)
		r.Blocks = 0
		r.Admitted = false
		r.restart()
		r.status = hfPending
		s.waiting.pushBack(r)
		s.offloads++
	}
	if len(victims) > 0 {
		s.blockNew = true
	}
	return len(victims)
}

func (s *hfSched) Finish(b *Batch) {
	s.running = false
	for _, e := range b.Entries {
		r := e.Req
		if r.Done {
			s.kv.Release(r.Blocks)
			r.Blocks = 0
			r.Admitted = false
			s.active[r.seq] = nil
			s.activeLen--
			s.blockNew = false
		}
	}
	// Drop finished slots now and then so walking the active set stays
	// proportional to the live requests.
	if len(s.active) > 64 && s.activeLen*2 < len(s.active) {
		n := 0
		for _, r := range s.active {
			if r != nil {
				r.seq = int64(n)
				s.active[n] = r
				n++
			}
		}
		clear(s.active[n:])
		s.active = s.active[:n]
	}
}
