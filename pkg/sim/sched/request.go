// Package sched holds the simulator's request state, the iteration (batch)
// the engine runs, and the pluggable scheduling policies that pick it:
// hf-cb (transformers' continuous batching, FIFO and prefill-first), and
// Vidur's vllm, sarathi and orca replica schedulers.
package sched

import (
	"fmt"

	"github.com/gsim-dev/gsim/pkg/sim/kv"
)

// Request is one request's progress. Processed follows Vidur's counter: the
// prompt tokens computed so far, and once the prompt is done, one more for
// every output token (so it reaches Prompt+Decode when the request is done).
// Every policy shares this counter so that progress, token emission and
// completion are applied in one place (Apply).
type Request struct {
	Index   int // position in the workload
	ID      int64
	Arrival int64
	Prompt  int64 // prompt tokens in the workload
	Decode  int64 // output tokens to generate (>= 1)

	// PrefillTarget is how many tokens the current prefill computes: Prompt,
	// or after a recompute preemption everything computed before it.
	PrefillTarget int64
	Processed     int64
	PrefillDone   bool
	// Emitted is the number of output tokens produced so far. Token k is
	// produced when Processed first passes Prompt+k; after a restart
	// Processed climbs again over counts it had reached, producing nothing
	// until it passes them.
	Emitted  int64
	Blocks   int64 // KV blocks held
	Admitted bool  // holds an allocation (Vidur's allocation_map)
	Restarts int
	Done     bool

	FirstScheduledNs int64 // -1 until first scheduled
	FirstTokenNs     int64
	LastTokenNs      int64
	CompletionNs     int64

	status hfStatus // hf-cb only
	seq    int64    // hf-cb: slot in the active set
	stamp  int64    // hf-cb: the walk that last offered it
}

// NewRequest returns a request ready to arrive.
func NewRequest(index int, id, arrival, prompt, decode int64) *Request {
	return &Request{Index: index, ID: id, Arrival: arrival, Prompt: prompt, Decode: decode,
		PrefillTarget: prompt, FirstScheduledNs: -1, FirstTokenNs: -1, LastTokenNs: -1, CompletionNs: -1}
}

// Generated is the number of output tokens produced so far.
func (r *Request) Generated() int64 { return r.Emitted }

// CacheLen is the number of tokens whose keys and values are in the cache:
// the newest output token is only written when it is fed back in the next
// iteration.
func (r *Request) CacheLen() int64 {
	if r.PrefillDone {
		return r.Processed - 1
	}
	return r.Processed
}

// restart is a recompute preemption as transformers' offloading does it:
// everything computed so far becomes the prompt of a new prefill; a request
// preempted in the middle of its prefill recomputes its whole prefill.
func (r *Request) restart() {
	if r.PrefillDone {
		r.PrefillTarget = r.Processed
	}
	r.Processed = 0
	r.PrefillDone = false
	r.Restarts++
}

// restartVidur is Vidur's Request.restart(): the tokens processed so far,
// whatever they were, become the prompt of a new prefill. For a request
// preempted while decoding that is prompt + generated, as in restart. For
// one preempted part-way through a chunked prefill (sarathi) it is only the
// part of the prompt computed: Vidur then marks that shorter prefill
// complete (counting a token, though no output token comes of it) and
// computes the rest of the prompt one token per iteration, as decodes.
func (r *Request) restartVidur() {
	r.PrefillTarget = r.Processed
	r.Processed = 0
	r.PrefillDone = false
	r.Restarts++
}

// Entry is one request's share of an iteration.
type Entry struct {
	Req     *Request
	Tokens  int64 // query tokens computed this iteration
	Prefill bool  // the request's prefill was not complete before it
	// ProcessedBefore is Req.Processed when the iteration was formed;
	// CacheBefore the cached tokens the iteration attends to besides its own.
	ProcessedBefore int64
	CacheBefore     int64
}

// Batch is one engine iteration.
type Batch struct {
	Entries []Entry
}

// Reset empties the batch, keeping its storage.
func (b *Batch) Reset() { b.Entries = b.Entries[:0] }

func (b *Batch) add(r *Request, tokens int64) {
	b.Entries = append(b.Entries, Entry{Req: r, Tokens: tokens, Prefill: !r.PrefillDone,
		ProcessedBefore: r.Processed, CacheBefore: r.CacheLen()})
}

// Shape is the batch composition predictors and step metrics use.
type Shape struct {
	Requests        int64
	PrefillRequests int64
	DecodeRequests  int64
	PrefillTokens   int64
	DecodeTokens    int64
	ContextTokens   int64 // sum over requests of tokens attended (cache + own)
	PrefillSquares  int64 // sum over prefill requests of tokens²
	// MaxContextTokens is the longest request's tokens attended (cache +
	// own): transformers keys its CUDA graphs by it, padded to a power
	// of two.
	MaxContextTokens int64
}

// Shape summarises the batch.
func (b *Batch) Shape() Shape {
	var s Shape
	for _, e := range b.Entries {
		s.Requests++
		s.ContextTokens += e.CacheBefore + e.Tokens
		s.MaxContextTokens = max(s.MaxContextTokens, e.CacheBefore+e.Tokens)
		if e.Prefill {
			s.PrefillRequests++
			s.PrefillTokens += e.Tokens
			s.PrefillSquares += e.Tokens * e.Tokens
		} else {
			s.DecodeRequests++
			s.DecodeTokens += e.Tokens
		}
	}
	return s
}

// Apply records an iteration that ended at now: it advances every request
// and calls emit for each output token produced (index from 0, with the
// time of the request's previous token, -1 for the first). Completed
// requests have Done set.
func (b *Batch) Apply(now int64, emit func(r *Request, tokenIndex, prevTokenNs int64)) {
	for i := range b.Entries {
		e := &b.Entries[i]
		r := e.Req
		r.Processed += e.Tokens
		total := r.Prompt + r.Decode
		if r.Processed > total {
			panic(fmt.Sprintf("sched: request %d processed %d tokens of %d", r.ID, r.Processed, total))
		}
		if !r.PrefillDone && r.Processed == r.PrefillTarget {
			r.PrefillDone = true
			r.Processed++
		}
		if r.Processed-r.Prompt > r.Emitted {
			if r.FirstTokenNs < 0 {
				r.FirstTokenNs = now
			}
			prev := r.LastTokenNs
			r.LastTokenNs = now
			emit(r, r.Emitted, prev)
			r.Emitted++
		}
		if r.Processed == total {
			r.Done = true
			r.CompletionNs = now
		}
	}
}

// Config holds every policy's knobs; each policy reads the ones it needs.
type Config struct {
	BlockSize int64
	NumBlocks int64
	// MaxBatchTokens is hf-cb's token budget per iteration and vllm's
	// max_tokens_in_batch.
	MaxBatchTokens int64
	BatchSizeCap   int64   // vllm, sarathi, orca; hf-cb's max_requests_per_batch when > 0
	ChunkSize      int64   // sarathi
	Watermark      float64 // vllm, sarathi: watermark_blocks_fraction
	SafetyMargin   float64 // hf-cb: free-block fraction below which no new prefill joins
	MaxKVRead      int64   // hf-cb: cache budget, KV tokens read per iteration (0: unlimited)
	// DecodeFastPath exempts all-decode iterations from the cache budget
	// (hf-cb; transformers turns it off for paged|sdpa attention).
	DecodeFastPath bool
	MaxTokens      int64 // orca: max tokens of a request (Vidur's max_tokens)
}

// Scheduler is a policy that forms iterations.
type Scheduler interface {
	Name() string
	// Add hands an arrived request to the policy.
	Add(r *Request)
	// Next fills b (already reset) with the next iteration; false if there
	// is nothing it can run now.
	Next(now int64, b *Batch) bool
	// Finish is called after Apply: it frees completed requests and requeues
	// the others.
	Finish(b *Batch)
	// Pending reports whether any request is waiting or running.
	Pending() bool
	// KV is the block pool, for invariant checks.
	KV() *kv.Manager
}

// New returns the named policy.
func New(name string, c Config) (Scheduler, error) {
	m, err := kv.New(c.BlockSize, c.NumBlocks)
	if err != nil {
		return nil, err
	}
	switch name {
	case "vllm":
		if c.BatchSizeCap <= 0 || c.MaxBatchTokens <= 0 {
			return nil, fmt.Errorf("sched vllm: batch_size_cap and max_batch_tokens must be positive")
		}
		return newVLLM(c, m), nil
	case "sarathi":
		if c.BatchSizeCap <= 0 || c.ChunkSize <= 0 {
			return nil, fmt.Errorf("sched sarathi: batch_size_cap and chunk_size must be positive")
		}
		return newSarathi(c, m), nil
	case "orca":
		if c.BatchSizeCap <= 0 || c.MaxTokens < c.BlockSize {
			return nil, fmt.Errorf("sched orca: batch_size_cap must be positive and max_tokens at least block_size")
		}
		return newOrca(c, m), nil
	case "hf-cb", "hf-cb-fifo":
		if c.MaxBatchTokens <= 0 {
			return nil, fmt.Errorf("sched hf-cb: max_batch_tokens must be positive")
		}
		return newHF(c, m, false), nil
	case "hf-cb-prefill-first":
		if c.MaxBatchTokens <= 0 {
			return nil, fmt.Errorf("sched hf-cb: max_batch_tokens must be positive")
		}
		return newHF(c, m, true), nil
	}
	return nil, fmt.Errorf("unknown scheduler %q; use one of %v", name, Names)
}

// Names lists the policies New knows.
var Names = []string{"hf-cb", "hf-cb-prefill-first", "vllm", "sarathi", "orca"}

// queue is a FIFO of requests with cheap push-front (restarted requests go
// back to the head, as in Vidur).
type queue struct {
	buf  []*Request
	head int
}

func (q *queue) len() int            { return len(q.buf) - q.head }
func (q *queue) front() *Request     { return q.buf[q.head] }
func (q *queue) at(i int) *Request   { return q.buf[q.head+i] }
func (q *queue) pushBack(r *Request) { q.buf = append(q.buf, r) }
func (q *queue) popFront() *Request {
	r := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head > 1024 && q.head*2 > len(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		q.buf = q.buf[:n]
		q.head = 0
	}
	return r
}
func (q *queue) pushFront(r *Request) {
	if q.head > 0 {
		q.head--
		q.buf[q.head] = r
		return
	}
	q.buf = append(q.buf, nil)
	copy(q.buf[1:], q.buf)
	q.buf[0] = r
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
