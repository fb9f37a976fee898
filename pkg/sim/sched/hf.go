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

// hfSched mirrors transformers' continuous-batching schedulers
// (generation/continuous_batching/scheduler.py, the version whose
// schedule_batch(token_budget, cache_budget) returns FutureRequestStates):
// each iteration walks candidates in priority order, gives each its
// remaining prompt (split at the token budget left) or one decode token,
// checks the cache can hold the new tokens, and stops when a budget is
// spent.
//
// FIFO: running decodes first, then partly prefilled requests, then the
// waiting queue. Prefill-first: partly prefilled, then decodes, then
// waiting. Outside the safety margin (free blocks below safety_margin ×
// num_blocks, checked once per iteration) only decodes, and the first
// request of an iteration, join.
//
// When nothing can be scheduled because the cache is full, the engine
// offloads one active request: its blocks are freed, everything it computed
// is recomputed later, and new requests are held back until a request
// finishes.
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

// blocksNeeded is the cache allocators' rule: enough blocks for everything
// cached plus the new tokens, less what the request holds.
func (s *hfSched) blocksNeeded(r *Request, n int64) int64 {
	return max(0, ceilDiv(r.CacheLen()+n, s.c.BlockSize)-r.Blocks)
}

func (s *hfSched) Next(now int64, b *Batch) bool {
	if s.running {
		return false
	}
	for {
		ok, allocFailed := s.walk(b)
		if ok {
			s.running = true
			return true
		}
		if !allocFailed || s.activeLen == 0 {
			return false
		}
		s.offloadOne()
	}
}

// walk forms one iteration; it reports whether anything was scheduled and
// whether some request was refused for lack of blocks.
func (s *hfSched) walk(b *Batch) (scheduled, allocFailed bool) {
	tokenBudget := s.c.MaxBatchTokens
	kvBudget := s.c.MaxKVRead
	reqBudget := s.c.BatchSizeCap
	inMargin := float64(s.kv.Free()) >= s.c.SafetyMargin*float64(s.kv.NumBlocks)
	fastPath := true // the decode fast path holds while every request has one token
	stop := false
	try := func(r *Request) {
		if !inMargin && len(b.Entries) > 0 && r.status != hfDecoding {
			stop = true
			return
		}
		remaining := int64(1)
		if r.status != hfDecoding {
			remaining = r.PrefillTarget - r.Processed
		}
		n := min(remaining, tokenBudget)
		read := r.CacheLen()
		if kvBudget > 0 || s.c.MaxKVRead > 0 {
			if !(fastPath && n == 1) && kvBudget < read {
				return
			}
		}
		need := s.blocksNeeded(r, n)
		if !s.kv.Alloc(need) {
			allocFailed = true
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
	// Candidates are chosen by their status before the walk: snapshot the
	// active set's length and each request's eligibility by pass.
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
	if s.activeLen == 0 {
		// Nothing is running that could finish and lift the hold.
		s.blockNew = false
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

// offloadOne is the engine's answer to a full cache: the newest active
// request gives its blocks back and will recompute what it had (a soft
// reset; gsim models no CPU offload pool), and new requests wait until a
// request finishes.
func (s *hfSched) offloadOne() {
	for i := len(s.active) - 1; i >= 0; i-- {
		r := s.active[i]
		if r == nil {
			continue
		}
		s.active[i] = nil
		s.activeLen--
		s.kv.Release(r.Blocks)
		r.Blocks = 0
		r.Admitted = false
		r.restart()
		r.status = hfPending
		s.waiting.pushFront(r)
		s.blockNew = true
		s.offloads++
		return
	}
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
