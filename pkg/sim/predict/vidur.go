package predict

import (
	"fmt"
	"math"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// VidurModel is what Vidur's predictor needs to know about the model.
type VidurModel struct {
	NumLayers    int64
	NumQHeads    int64
	NumKVHeads   int64
	Hidden       int64
	PostAttnNorm bool // Llama/Qwen: true
}

// VidurOptions are Vidur's predictor settings, with Vidur's defaults from
// NewVidurOptions.
type VidurOptions struct {
	KVGranularity           int64   // kv_cache_prediction_granularity
	PrefillBatchingOverhead float64 // attention_prefill_batching_overhead_fraction (GQA only)
	DecodeBatchingOverhead  float64 // attention_decode_batching_overhead_fraction (GQA only)
	CPUOverhead             bool    // !skip_cpu_overhead_modeling
	GapNs                   int64   // Vidur has none; kept for symmetry
	// Interpolation between profiled points: InterpLinear (default),
	// InterpNearest or InterpForest; or InterpVidurTable, which reads no
	// profile but Vidur's own exported predictions (Tables, or TablesDir).
	Interpolation string
	TablesDir     string
	// Tables, when set, are used as read (one simulation at a time: they
	// count lookups that miss); else TablesDir is read.
	Tables *VidurTables
}

// NewVidurOptions returns Vidur's defaults: granularity 64, 10% batching
// overheads for GQA models, CPU overhead modeling off.
func NewVidurOptions() VidurOptions {
	return VidurOptions{KVGranularity: 64, PrefillBatchingOverhead: 0.1, DecodeBatchingOverhead: 0.1}
}

// Interpolation modes: how the profile is read between profiled points.
const (
	InterpLinear  = "linear"  // piecewise linear, extended linearly beyond the grid
	InterpNearest = "nearest" // the nearest profiled point (a single fully grown tree)
	InterpForest  = "forest"  // a random forest grown as Vidur grows its own
)

type fn1 interface{ at(x float64) float64 }
type fn2 interface{ at(a, b float64) float64 }

// seedOf gives each operation's forest its own fixed seed.
func seedOf(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}

// computeOps are the per-layer operations of mlp.csv, keyed by the batch's
// token count rounded up to 8, as Vidur's sklearn predictor reads them.
var computeOps = []string{"attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj",
	"mlp_act", "input_layernorm", "post_attention_layernorm", "attn_rope", "add"}

var cpuOps = []string{"schedule", "sampler_e2e", "prepare_inputs_e2e", "process_model_outputs", "ray_comm_time"}

// VidurProfile is Vidur's execution-time decomposition with linear
// interpolation over the profiled grid in place of its random forests.
type VidurProfile struct {
	m       VidurModel
	o       VidurOptions
	ops     map[string]fn1
	kvSave  fn1
	prefill fn2 // (kv_cache_size, prefill_chunk_size²) → ms
	decode  fn2 // (batch_size, kv_cache_size) → ms
	cpu     map[string]fn1
	device  string
	model   string
	gqa     bool
	// memo keeps what depends on the batch's token count alone (the sum
	// of the per-layer compute operations and the KV-cache save), which a
	// long simulation asks for millions of times over a few thousand
	// distinct counts. Only for pure interpolations: Vidur's tables count
	// every lookup that misses.
	memo *tokenMemo
}

// tokenMemo caches, by token count, values that are pure functions of it.
// Counts past memoLimit are computed every time.
type tokenMemo struct {
	compute []memoVal // by the count rounded up to 8, divided by 8
	kvSave  []memoVal // by the count
}

type memoVal struct {
	v  float64
	ok bool
}

const memoLimit = 1 << 16

// cached returns (*tab)[i], filling it with f() the first time.
func cached(tab *[]memoVal, i int64, f func() float64) float64 {
	if i < 0 || i >= memoLimit {
		return f()
	}
	if i >= int64(len(*tab)) {
		*tab = append(*tab, make([]memoVal, int(i)+1-len(*tab))...)
	}
	e := &(*tab)[i]
	if !e.ok {
		e.v, e.ok = f(), true
	}
	return e.v
}

// NewVidurProfile builds the predictor from a profile read by
// profile.Read. Vidur's CPU overhead terms (schedule, sampler_e2e,
// prepare_inputs_e2e, process_model_outputs, ray_comm_time by batch size)
// are added only when o.CPUOverhead is set, as Vidur's
// skip_cpu_overhead_modeling defaults to skipping them; the profile must
// then hold them.
func NewVidurProfile(prof *profile.Profile, m VidurModel, o VidurOptions) (*VidurProfile, error) {
	if o.KVGranularity <= 0 {
		o.KVGranularity = 64
	}
	switch o.Interpolation {
	case "":
		o.Interpolation = InterpLinear
	case InterpLinear, InterpNearest, InterpForest:
	case InterpVidurTable:
		return newVidurTableProfile(m, o)
	default:
		return nil, fmt.Errorf("interpolation %q; use %s, %s, %s or %s", o.Interpolation, InterpLinear, InterpNearest, InterpForest, InterpVidurTable)
	}
	nearest := o.Interpolation == InterpNearest
	mk1 := func(name string, xs, ys []float64) fn1 {
		if o.Interpolation == InterpForest {
			pts := make([][2]float64, len(xs))
			for i, x := range xs {
				pts[i] = [2]float64{x, 0}
			}
			return forest1{newForest(pts, ys, 1, seedOf(name))}
		}
		l := newLine(xs, ys)
		l.nearest = nearest
		return l
	}
	mk2 := func(name string, as, bs, ys []float64) fn2 {
		if o.Interpolation == InterpForest {
			pts := make([][2]float64, len(as))
			for i := range as {
				pts[i] = [2]float64{as[i], bs[i]}
			}
			return forest2{newForest(pts, ys, 2, seedOf(name))}
		}
		return newGrid2(as, bs, ys, nearest)
	}
	p := &VidurProfile{m: m, o: o, ops: map[string]fn1{}, device: prof.Device, model: prof.Model,
		gqa: m.NumQHeads > m.NumKVHeads, memo: &tokenMemo{}}
	var mlp []profile.MLPRow
	for _, r := range prof.MLP {
		if int64(r.NHead) == m.NumQHeads && int64(r.NKVHead) == m.NumKVHeads && int64(r.NEmbd) == m.Hidden &&
			r.NumTensorParallelWorkers == 1 {
			mlp = append(mlp, r)
		}
	}
	if len(mlp) == 0 {
		return nil, fmt.Errorf("profile %s/%s: no mlp.csv rows for this model (n_head=%d, n_kv_head=%d, n_embd=%d, tensor parallel 1); profile the same model config",
			prof.Device, prof.Model, m.NumQHeads, m.NumKVHeads, m.Hidden)
	}
	for _, op := range computeOps {
		xs, ys := make([]float64, len(mlp)), make([]float64, len(mlp))
		for i, r := range mlp {
			xs[i], ys[i] = float64(r.NumTokens), r.TimeMs[op]
		}
		p.ops[op] = mk1(op, xs, ys)
	}
	var kvX, kvY, pa, pb, py, da, db, dy []float64
	for _, r := range prof.Attention {
		if int64(r.NQHead) != m.NumQHeads || int64(r.NKVHead) != m.NumKVHeads || int64(r.NEmbd) != m.Hidden ||
			r.NumTensorParallelWorkers != 1 {
			continue
		}
		chunk, bs, kvs := float64(r.PrefillChunkSize), float64(r.BatchSize), float64(r.KVCacheSize)
		kvX, kvY = append(kvX, math.Max(chunk, bs)), append(kvY, r.TimeMs["attn_kv_cache_save"])
		if r.PrefillChunkSize == 0 {
			da, db, dy = append(da, bs), append(db, kvs), append(dy, r.TimeMs["attn_decode"])
		} else {
			pa, pb, py = append(pa, kvs), append(pb, chunk*chunk), append(py, r.TimeMs["attn_prefill"])
		}
	}
	if len(pa) == 0 || len(da) == 0 {
		return nil, fmt.Errorf("profile %s/%s: attention.csv needs prefill rows (prefill_chunk_size > 0) and decode rows (prefill_chunk_size = 0) for this model",
			prof.Device, prof.Model)
	}
	p.kvSave = mk1("attn_kv_cache_save", kvX, kvY)
	p.prefill = mk2("attn_prefill", pa, pb, py)
	p.decode = mk2("attn_decode", da, db, dy)
	if o.CPUOverhead {
		p.cpu = map[string]fn1{}
		for _, op := range cpuOps {
			var xs, ys []float64
			for _, r := range prof.CPURows {
				if r.Name == op {
					xs, ys = append(xs, float64(r.BatchSize)), append(ys, r.Stat.Median)
				}
			}
			if len(xs) == 0 {
				return nil, fmt.Errorf("profile %s/%s: cpu_overhead is on but cpu_overhead.csv has no %q rows; profile Vidur's CPU overheads or turn cpu_overhead off (Vidur's default)",
					prof.Device, prof.Model, op)
			}
			p.cpu[op] = mk1(op, xs, ys)
		}
	}
	return p, nil
}

func (p *VidurProfile) Name() string { return "vidur-profile" }
func (p *VidurProfile) GapNs() int64 { return p.o.GapNs }

func (p *VidurProfile) Describe() map[string]any {
	d := map[string]any{"name": p.Name(), "device": p.device, "model": p.model, "kv_cache_prediction_granularity": p.o.KVGranularity,
		"cpu_overhead": p.o.CPUOverhead, "interpolation": p.o.Interpolation}
	if p.o.Interpolation == InterpVidurTable {
		d["vidur_tables"] = p.o.TablesDir
		d["table_misses"] = p.TableMisses()
	}
	return d
}

func roundUp(x, g int64) int64 { return (x + g - 1) / g * g }

// StepMs is Vidur's ExecutionTime.total_time in milliseconds for batch b.
func (p *VidurProfile) StepMs(b *sched.Batch) float64 {
	var total int64
	var decN, decKV int64
	var preKV int64
	var preSq float64
	var preN int
	g := p.o.KVGranularity
	for _, e := range b.Entries {
		total += e.Tokens
		if e.Prefill {
			preN++
			preKV += roundUp(e.ProcessedBefore, g)
			preSq += float64(e.Tokens * e.Tokens)
		} else {
			decN++
			decKV += e.ProcessedBefore
		}
	}
	rounded := (total + 7) / 8 * 8
	var block float64
	if p.memo != nil {
		// The same additions in the same order as below: bit for bit the
		// same sum.
		block = cached(&p.memo.compute, rounded/8, func() float64 { return p.computeMs(float64(rounded)) })
		block += cached(&p.memo.kvSave, total, func() float64 { return p.kvSave.at(float64(total)) })
	} else {
		block = p.computeMs(float64(rounded))
		block += p.kvSave.at(float64(total))
	}
	if decN > 0 {
		avg := roundUp(decKV/decN, g)
		t := p.decode.at(float64(decN), float64(avg))
		if p.gqa && decN > 1 {
			t *= 1 + p.o.DecodeBatchingOverhead
		}
		block += t
	}
	if preN > 0 {
		agg := math.Round(math.Sqrt(preSq))
		t := p.prefill.at(float64(preKV), agg*agg)
		if p.gqa && preN > 1 {
			t *= 1 + p.o.PrefillBatchingOverhead
		}
		block += t
	}
	ms := block * float64(p.m.NumLayers)
	if p.o.CPUOverhead {
		n := float64(len(b.Entries))
		for _, op := range cpuOps {
			ms += p.cpu[op].at(n)
		}
	}
	return ms
}

// computeMs is the sum of the per-layer compute operations at a rounded
// token count.
func (p *VidurProfile) computeMs(rounded float64) float64 {
	var block float64
	for _, op := range computeOps {
		if op == "post_attention_layernorm" && !p.m.PostAttnNorm {
			continue
		}
		block += p.ops[op].at(rounded)
	}
	return block
}

func (p *VidurProfile) StepNs(b *sched.Batch) int64 {
	return int64(math.Round(p.StepMs(b) * 1e6))
}
