package sched

import (
	"slices"

	"github.com/gsim-dev/gsim/pkg/sim/kv"
)

// vidurBase is what Vidur's BaseReplicaScheduler keeps: a request queue, an
// allocation map (here Request.Admitted/Blocks and a count) and, for the
// vllm-like policies, the list of running requests it calls preempted.
type vidurBase struct {
	c         Config
	kv        *kv.Manager
	queue     queue
	preempted []*Request
	admitted  int64 // len(allocation_map)
	running   bool  // one pipeline stage: at most one batch in flight
}

func (s *vidurBase) KV() *kv.Manager { return s.kv }
func (s *vidurBase) Add(r *Request)  { s.queue.pushBack(r) }
func (s *vidurBase) Pending() bool {
	return s.queue.len() > 0 || len(s.preempted) > 0 || s.running
}

func (s *vidurBase) allocate(r *Request, n int64) {
	if !s.kv.Alloc(n) {
		panic("sched: allocation beyond the pool; a can-allocate check is missing")
	}
	if !r.Admitted {
		r.Admitted = true
		s.admitted++
	}
	r.Blocks += n
}

func (s *vidurBase) free(r *Request) {
	if !r.Admitted {
		panic("sched: freeing a request that holds no allocation")
	}
	s.kv.Release(r.Blocks)
	r.Blocks = 0
	r.Admitted = false
	s.admitted--
}

// Finish is Vidur's on_batch_end for vllm, sarathi and orca.
func (s *vidurBase) Finish(b *Batch) {
	s.running = false
	for _, e := range b.Entries {
		if e.Req.Done {
			s.free(e.Req)
		} else {
			s.preempted = append(s.preempted, e.Req)
		}
	}
}

// canAllocate and allocateRequest are the vllm/sarathi block rules: a new
// request reserves its whole prompt and must leave the watermark free; a
// running one needs one free block and takes one when its tokens outgrow
// what it holds.
func (s *vidurBase) canAllocate(r *Request, watermark int64) bool {
	if !r.Admitted {
		need := ceilDiv(r.PrefillTarget, s.c.BlockSize)
		return s.kv.NumBlocks-s.kv.Used()-need >= watermark
	}
	return s.kv.NumBlocks-s.kv.Used() >= 1
}

func (s *vidurBase) allocateRequest(r *Request) {
	if !r.Admitted {
		s.allocate(r, ceilDiv(r.PrefillTarget, s.c.BlockSize))
		return
	}
	reserved := r.Blocks * s.c.BlockSize
	need := max(0, r.Processed-reserved)
	if need > 1 {
		panic("sched: a running request outgrew its blocks by more than one token")
	}
	if need == 1 {
		s.allocate(r, 1)
	}
}

// restartInto preempts r by recompute (Vidur's restart) and puts it at the
// head of the queue.
func (s *vidurBase) restartInto(r *Request) {
	r.restartVidur()
	s.free(r)
	s.queue.pushFront(r)
}

func byArrival(a, b *Request) int {
	switch {
	case a.Arrival < b.Arrival:
		return -1
	case a.Arrival > b.Arrival:
		return 1
	}
	return 0
}

func nextTokensVidur(r *Request) int64 {
	if r.PrefillDone {
		return 1
	}
	return r.PrefillTarget
}

// makeRoom admits preempted request r, taken from s.preempted[i-1]: while
// its blocks do not fit it restarts the most recently preempted requests
// behind it (Vidur's victim order), and restarts r itself when none is
// left. It reports whether r was allocated.
func (s *vidurBase) makeRoom(r *Request, i int, watermark int64) bool {
	for !s.canAllocate(r, watermark) {
		if i >= len(s.preempted) {
			s.restartInto(r)
			return false
		}
		victim := s.preempted[len(s.preempted)-1]
		s.preempted = s.preempted[:len(s.preempted)-1]
		s.restartInto(victim)
	}
	s.allocateRequest(r)
	return true
}

// vllmSched is Vidur's VLLMReplicaScheduler: prefill-only batches while new
// requests fit (padded size len × max tokens ≤ max_tokens_in_batch), else a
// decode batch of running requests, preempting the newest by recompute when
// blocks run out.
type vllmSched struct {
	vidurBase
	watermark int64
}

func newVLLM(c Config, m *kv.Manager) *vllmSched {
	return &vllmSched{vidurBase: vidurBase{c: c, kv: m}, watermark: int64(c.Watermark * float64(c.NumBlocks))}
}

func (s *vllmSched) Name() string { return "vllm" }

func (s *vllmSched) Next(now int64, b *Batch) bool {
	if s.running {
		return false
	}
	var maxTok int64
	for s.queue.len() > 0 {
		r := s.queue.front()
		next := nextTokensVidur(r)
		if !s.canAllocate(r, s.watermark) {
			break
		}
		if int64(len(b.Entries)+1)*max(maxTok, next) > s.c.MaxBatchTokens {
			break
		}
		if s.admitted == s.c.BatchSizeCap {
			break
		}
		if int64(len(b.Entries)) == s.c.BatchSizeCap {
			break
		}
		s.queue.popFront()
		s.allocateRequest(r)
		b.add(r, next)
		maxTok = max(maxTok, next)
	}
	if len(b.Entries) > 0 {
		s.running = true
		return true
	}
	if !slices.IsSortedFunc(s.preempted, byArrival) {
		slices.SortStableFunc(s.preempted, byArrival)
	}
	// Walk the running list by index (Vidur pops from its head); victims
	// are taken from its tail.
	i := 0
	for i < len(s.preempted) {
		if int64(len(b.Entries)) == s.c.BatchSizeCap {
			break
		}
		r := s.preempted[i]
		i++
		if s.makeRoom(r, i, s.watermark) {
			b.add(r, nextTokensVidur(r))
		}
	}
	n := copy(s.preempted, s.preempted[i:])
	clear(s.preempted[n:])
	s.preempted = s.preempted[:n]
	if len(b.Entries) == 0 {
		return false
	}
	s.running = true
	return true
}

// sarathiSched is Vidur's SarathiReplicaScheduler: decodes first, then
// running partial prefills, then new requests, all under chunk_size tokens
// (decodes count one each; prefills are chunked to what is left).
type sarathiSched struct {
	vidurBase
	watermark int64
	skipped   []*Request
	prefills  []*Request
	merged    []*Request
}

func newSarathi(c Config, m *kv.Manager) *sarathiSched {
	return &sarathiSched{vidurBase: vidurBase{c: c, kv: m}, watermark: int64(c.Watermark * float64(c.NumBlocks))}
}

func (s *sarathiSched) Name() string { return "sarathi" }

func (s *sarathiSched) nextTokens(r *Request, batchTokens int64) int64 {
	if r.PrefillDone {
		return 1
	}
	return max(0, min(r.PrefillTarget-r.Processed, s.c.ChunkSize-batchTokens))
}

func (s *sarathiSched) Next(now int64, b *Batch) bool {
	if s.running {
		return false
	}
	s.skipped = s.skipped[:0]
	s.prefills = s.prefills[:0]
	var batchTokens int64
	i := 0
	for i < len(s.preempted) {
		if int64(len(b.Entries)) == s.c.BatchSizeCap {
			break
		}
		r := s.preempted[i]
		i++
		if !r.PrefillDone {
			s.prefills = append(s.prefills, r)
			continue
		}
		next := s.nextTokens(r, batchTokens)
		if next == 0 {
			s.skipped = append(s.skipped, r)
			continue
		}
		if s.makeRoom(r, i, s.watermark) {
			batchTokens += next
			b.add(r, next)
		}
	}
	rest := s.preempted[i:]
	for _, r := range s.prefills {
		next := s.nextTokens(r, batchTokens)
		if next == 0 {
			s.skipped = append(s.skipped, r)
			continue
		}
		batchTokens += next
		b.add(r, next)
	}
	s.merged = append(append(s.merged[:0], s.skipped...), rest...)
	slices.SortStableFunc(s.merged, byArrival)
	clear(s.preempted)
	s.preempted, s.merged = s.merged, s.preempted[:0]
	for s.queue.len() > 0 {
		if s.admitted == s.c.BatchSizeCap || int64(len(b.Entries)) == s.c.BatchSizeCap {
			break
		}
		r := s.queue.front()
		if !s.canAllocate(r, s.watermark) {
			break
		}
		next := s.nextTokens(r, batchTokens)
		if next == 0 {
			break
		}
		s.queue.popFront()
		s.allocateRequest(r)
		batchTokens += next
		b.add(r, next)
	}
	if len(b.Entries) == 0 {
		return false
	}
	s.running = true
	return true
}

// orcaSched is Vidur's OrcaReplicaScheduler: every running request each
// iteration, plus new ones while a whole max-length sequence of blocks fits.
type orcaSched struct {
	vidurBase
	maxBlocksPerSeq int64
}

func newOrca(c Config, m *kv.Manager) *orcaSched {
	return &orcaSched{vidurBase: vidurBase{c: c, kv: m}, maxBlocksPerSeq: c.MaxTokens / c.BlockSize}
}

func (s *orcaSched) Name() string { return "orca" }

func (s *orcaSched) Next(now int64, b *Batch) bool {
	if s.running {
		return false
	}
	i := 0
	for ; i < len(s.preempted); i++ {
		if int64(len(b.Entries)) == s.c.BatchSizeCap {
			break
		}
		b.add(s.preempted[i], nextTokensVidur(s.preempted[i]))
	}
	n := copy(s.preempted, s.preempted[i:])
	clear(s.preempted[n:])
	s.preempted = s.preempted[:n]
	for s.queue.len() > 0 {
		if int64(len(b.Entries)) == s.c.BatchSizeCap {
			break
		}
		// Vidur reserves max_tokens/block_size blocks for every request; a
		// request longer than that would overrun the reservation silently,
		// so it reserves what it needs instead.
		r := s.queue.front()
		need := max(s.maxBlocksPerSeq, ceilDiv(r.Prompt+r.Decode, s.c.BlockSize))
		if s.kv.Free() < need {
			break
		}
		s.queue.popFront()
		s.allocate(r, need)
		b.add(r, nextTokensVidur(r))
	}
	if len(b.Entries) == 0 {
		return false
	}
	s.running = true
	return true
}
