package sched

import (
	"github.com/gsim-dev/gsim/pkg/sim/kv"
)

// hfStatus mirrors transformers' RequestStatus for continuous batching.
type hfStatus uint8

const (
	hfPending         hfStatus = iota // in the waiting queue
	hfPrefilling                      // the rest of the prompt is in this iteration
	hfPrefillingSplit                 // a chunk of the prompt is in this iteration
	hfSplitRemainder                  // a chunk is done; the rest waits
	hfDecoding
)

// hfSched mirrors transformers' continuous-batching schedulers
// (generation/continuous_batching/scheduler.py): each iteration walks
// candidates in priority order, gives each its remaining prompt (split to the
// token budget left) or one decode token, allocates blocks with the
// engine's rule, and stops when the budget is spent. There is no preemption:
// a request whose blocks do not fit waits.
//
// FIFO: running decodes first, then split prefills, then waiting requests;
// once free blocks fall under safety_margin × num_blocks only decodes (and
// the first request of the iteration) join.
// Prefill-first: split prefills first, then decodes, then waiting; no margin.
type hfSched struct {
	c            Config
	kv           *kv.Manager
	prefillFirst bool
	waiting      queue
	active       []*Request // in order of entering the active set
	activeLen    int        // live entries of active (finished ones are nil)
	running      bool
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

func (s *hfSched) Next(now int64, b *Batch) bool {
	if s.running {
		return false
	}
	budget := s.c.MaxBatchTokens
	safety := s.c.SafetyMargin * float64(s.kv.NumBlocks)
	// try offers one candidate; it returns false when the walk must stop.
	try := func(r *Request) bool {
		if !s.prefillFirst && float64(s.kv.Free()) < safety && len(b.Entries) > 0 && r.status != hfDecoding {
			return false
		}
		if s.c.BatchSizeCap > 0 && int64(len(b.Entries)) == s.c.BatchSizeCap {
			return false
		}
		var n int64 = 1
		split := false
		if r.status != hfDecoding {
			n = r.PrefillTarget - r.Processed
			// transformers takes the whole remainder only when it is
			// strictly below the budget; otherwise it splits at the budget.
			if n >= budget {
				n = budget
				split = true
			}
		}
		if !s.allocate(r, n) {
			return s.kv.Free() != 0
		}
		if r.status == hfPending {
			r.seq = int64(len(s.active))
			s.active = append(s.active, r)
			s.activeLen++
		}
		if r.status != hfDecoding {
			if split {
				r.status = hfPrefillingSplit
			} else {
				r.status = hfPrefilling
			}
		}
		b.add(r, n)
		budget -= n
		return budget != 0
	}
	isSplit := func(r *Request) bool { return r.status == hfPrefillingSplit || r.status == hfSplitRemainder }
	isDecode := func(r *Request) bool { return r.status == hfDecoding }
	first, second := isDecode, isSplit
	if s.prefillFirst {
		first, second = isSplit, isDecode
	}
	// The active set is walked over a snapshot of its length: requests
	// admitted from the waiting queue in this walk are appended to it and
	// must not be offered twice.
	n := len(s.active)
	for _, pass := range []func(*Request) bool{first, second} {
		for _, r := range s.active[:n] {
			if r != nil && pass(r) {
				if !try(r) {
					return s.finishNext(b)
				}
			}
		}
	}
	for i := 0; i < s.waiting.len(); i++ {
		r := s.waiting.at(i)
		if r.status != hfPending {
			continue // admitted earlier; removed lazily below
		}
		if !try(r) {
			break
		}
	}
	return s.finishNext(b)
}

func (s *hfSched) finishNext(b *Batch) bool {
	for s.waiting.len() > 0 && s.waiting.front().status != hfPending {
		s.waiting.popFront()
	}
	if len(b.Entries) == 0 {
		return false
	}
	s.running = true
	return true
}

// allocate is transformers' _allocate_blocks_if_needed, with its
// over-allocation when the new tokens exactly fill the free room.
func (s *hfSched) allocate(r *Request, n int64) bool {
	bs := s.c.BlockSize
	occupancy := r.Blocks*bs - r.CacheLen()
	if occupancy < n || r.Blocks == 0 {
		need := (n-occupancy+1)/bs + 1
		if !s.kv.Alloc(need) {
			return false
		}
		r.Blocks += need
		r.Admitted = true
	}
	return true
}

func (s *hfSched) Finish(b *Batch) {
	s.running = false
	for _, e := range b.Entries {
		r := e.Req
		switch {
		case r.Done:
			s.kv.Release(r.Blocks)
			r.Blocks = 0
			r.Admitted = false
			s.active[r.seq] = nil
			s.activeLen--
		case r.PrefillDone:
			r.status = hfDecoding
		case r.status == hfPrefillingSplit:
			r.status = hfSplitRemainder
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
