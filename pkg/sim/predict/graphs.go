package predict

import (
	"fmt"
	"math/bits"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// GraphConfig is how transformers' continuous batching keys the CUDA graphs
// it captures (model_runner.py maybe_pad_inputs, input_outputs.py
// _get_graph_key and get_model_kwargs, utils.py pad_to_interval and
// pad_to_pow2, in 5.17): a step runs the graph of (query tokens padded to
// a multiple of QPadding, cached KV tokens read padded to a multiple of
// KVPadding, the longest request's KV length padded to a power of two of
// at least SeqlenMin), capped at MaxBatchTokens and CacheTokens; a key not
// seen before is captured on the spot (an eager forward, then the capture).
type GraphConfig struct {
	QPadding       int64 `json:"q_padding"`
	KVPadding      int64 `json:"kv_padding"`
	MaxBatchTokens int64 `json:"max_batch_tokens"`
	// CacheTokens is num_blocks × block_size (the engine's num_pages).
	CacheTokens int64 `json:"cache_tokens"`
	SeqlenMin   int64 `json:"seqlen_min"`
	// Capacity bounds the graphs kept (least recently used evicted); 0:
	// unbounded, as in transformers 5.17, whose graph buffer is a dict.
	Capacity int `json:"capacity,omitempty"`
}

// DefaultSeqlenMin is transformers' floor for the padded KV length key.
const DefaultSeqlenMin = 1024

// GraphKey is one captured graph's shape.
type GraphKey struct {
	Q    int64 `json:"q"`
	KV   int64 `json:"kv"`
	SeqK int64 `json:"seqlen_k"`
}

func (k GraphKey) String() string { return fmt.Sprintf("%dx%dx%d", k.Q, k.KV, k.SeqK) }

// padInterval is pad_to_interval: the smallest multiple of interval >=
// size (interval itself for an empty size), capped at limit.
func padInterval(size, interval, limit int64) int64 {
	if interval <= 0 {
		return limit
	}
	p := interval
	if size > 0 {
		p = (size + interval - 1) / interval * interval
	}
	return min(p, limit)
}

// padPow2 is pad_to_pow2: the smallest power of two >= max(v, floor, 1),
// capped at limit.
func padPow2(v, limit, floor int64) int64 {
	v = max(v, floor, 1)
	p := int64(1) << bits.Len64(uint64(v-1))
	return min(p, limit)
}

// Key is the graph a step of shape sh runs.
func (g GraphConfig) Key(sh sched.Shape) GraphKey {
	q := sh.PrefillTokens + sh.DecodeTokens
	return GraphKey{
		Q:    padInterval(q, g.QPadding, g.MaxBatchTokens),
		KV:   padInterval(sh.ContextTokens-q, g.KVPadding, g.CacheTokens),
		SeqK: padPow2(sh.MaxContextTokens, g.CacheTokens, g.SeqlenMin),
	}
}

// WarmupKey is the graph the engine's warmup() captures before serving: one
// request of max_batch_tokens query tokens reading the rest of the cache.
func (g GraphConfig) WarmupKey() GraphKey {
	return GraphKey{
		Q:    padInterval(g.MaxBatchTokens, g.QPadding, g.MaxBatchTokens),
		KV:   padInterval(g.CacheTokens-g.MaxBatchTokens, g.KVPadding, g.CacheTokens),
		SeqK: padPow2(g.CacheTokens, g.CacheTokens, g.SeqlenMin),
	}
}

// graphCache is the set of captured graphs of one simulated engine process.
type graphCache struct {
	capacity int
	keys     map[GraphKey]uint64 // key → last use
	clock    uint64
	// shapes are the padded (query, KV) tensor shapes the process has
	// captured a graph of, whatever the KV-length key: a capture of such
	// a shape is cheaper than one of a fresh shape.
	shapes map[[2]int64]bool
}

func newGraphCache(capacity int) *graphCache {
	return &graphCache{capacity: capacity, keys: map[GraphKey]uint64{}, shapes: map[[2]int64]bool{}}
}

// seenShape reports whether a graph of k's tensor shape was captured.
func (c *graphCache) seenShape(k GraphKey) bool { return c.shapes[[2]int64{k.Q, k.KV}] }

// use reports whether k was cached and caches it, evicting the least
// recently used graph beyond the capacity.
func (c *graphCache) use(k GraphKey) bool {
	c.clock++
	if _, ok := c.keys[k]; ok {
		c.keys[k] = c.clock
		return true
	}
	if c.capacity > 0 && len(c.keys) >= c.capacity {
		var oldest GraphKey
		first := true
		for key, t := range c.keys {
			if first || t < c.keys[oldest] {
				oldest, first = key, false
			}
		}
		delete(c.keys, oldest)
	}
	c.keys[k] = c.clock
	c.shapes[[2]int64{k.Q, k.KV}] = true
	return false
}
