// Package profile reads, validates and writes GPU operation profiles in
// Vidur's layout, so that real Vidur and gsim's embedded simulator read the
// same files:
//
//	<root>/profiling/compute/<device>/<org>/<model>/mlp.csv
//	<root>/profiling/compute/<device>/<org>/<model>/attention.csv
//	<root>/extra_ops.csv         (optional, gsim's own: ops Vidur has no column for)
//	<root>/cpu_overhead.csv      (optional, gsim's own; see docs/profile.md)
//	<root>/profile_meta.json     (optional, how the profile was measured)
//
// Column names and order are Vidur's (vidur/profiling/mlp and attention:
// pandas' json_normalize of the timer stats first, then the shape columns).
// All times are milliseconds.
package profile

import (
	"fmt"
	"sort"
	"strings"
)

// File names inside a profile folder.
const (
	MLPFile         = "mlp.csv"
	AttentionFile   = "attention.csv"
	CPUOverheadFile = "cpu_overhead.csv"
	ExtraOpsFile    = "extra_ops.csv"
	MetaFile        = "profile_meta.json"
	// ComputeDir is the folder under root that holds <device>/<org>/<model>.
	ComputeDir = "profiling/compute"
)

// Stats are the per-op statistic suffixes, in Vidur's column order.
var Stats = []string{"min", "max", "mean", "median", "std"}

// MLPOps are the ops of mlp.csv in Vidur's column order. Vidur's predictor
// sums, per layer: input_layernorm, attn_pre_proj, attn_rope, attn_post_proj,
// post_attention_layernorm, mlp_up_proj, mlp_act, mlp_down_proj, add (and
// attention from attention.csv); emb is profiled but not used by it.
var MLPOps = []string{
	"emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
	"post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add",
}

// MLPShapeColumns follow the time_stats columns in mlp.csv.
var MLPShapeColumns = []string{
	"n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size",
	"use_gated_mlp", "num_tokens", "num_tensor_parallel_workers",
}

// AttentionOps are the ops of attention.csv in the order the attention
// wrapper enters its timers (input reshape, KV save, prefill, decode, output
// reshape). attn_prefill is empty on decode rows and attn_decode on prefill
// rows, as in Vidur's own files where a timer never ran for that input.
var AttentionOps = []string{
	"attn_input_reshape", "attn_kv_cache_save", "attn_prefill", "attn_decode", "attn_output_reshape",
}

// AttentionShapeColumns follow the time_stats columns in attention.csv.
var AttentionShapeColumns = []string{
	"n_embd", "n_q_head", "n_kv_head", "block_size", "num_tensor_parallel_workers",
	"max_model_len", "batch_size", "prefill_chunk_size", "kv_cache_size", "is_prefill",
	"attention_backend",
}

// CPUOverheadColumns is the header of cpu_overhead.csv.
var CPUOverheadColumns = []string{"name", "batch_size", "samples", "median_ms", "mean_ms", "min_ms", "max_ms", "std_ms"}

// ExtraOpsColumns is the header of extra_ops.csv.
var ExtraOpsColumns = []string{"op", "num_tokens", "kv_tokens", "samples", "median_ms", "mean_ms", "min_ms", "max_ms", "std_ms"}

// Ops of extra_ops.csv. Per forward, not per layer: rotary_emb and
// final_norm over all tokens of the step; lm_head (with the float cast) and
// sample_argmax over one row per request (num_tokens = requests). Per layer:
// attn_packed is the whole attention of one step (every attention.csv op
// summed) for num_tokens packed queries over kv_tokens packed keys.
const (
	OpRotaryEmb    = "rotary_emb"
	OpFinalNorm    = "final_norm"
	OpLMHead       = "lm_head"
	OpSampleArgmax = "sample_argmax"
	OpAttnPacked   = "attn_packed"
)

// MLPColumns is mlp.csv's exact header.
func MLPColumns() []string { return append(statColumns(MLPOps), MLPShapeColumns...) }

// AttentionColumns is attention.csv's exact header.
func AttentionColumns() []string {
	return append(statColumns(AttentionOps), AttentionShapeColumns...)
}

func statColumns(ops []string) []string {
	out := make([]string, 0, len(ops)*len(Stats))
	for _, op := range ops {
		for _, s := range Stats {
			out = append(out, "time_stats."+op+"."+s)
		}
	}
	return out
}

// Stat is one op's timing statistics over the repeats, in ms.
type Stat struct {
	Min, Max, Mean, Median, Std float64
}

func (s Stat) values() []float64 { return []float64{s.Min, s.Max, s.Mean, s.Median, s.Std} }

// MLPRow is one row of mlp.csv: the token-parallel ops at one token count.
type MLPRow struct {
	NumTokens int
	// TimeMs maps op (MLPOps) to its median time in ms.
	TimeMs map[string]float64
	// Stats holds every statistic; Write fills missing ops from TimeMs.
	Stats map[string]Stat

	NHead, NKVHead, NEmbd, NExpandedEmbd, VocabSize int
	UseGatedMLP                                     bool
	NumTensorParallelWorkers                        int
}

// AttentionRow is one row of attention.csv. A prefill row has BatchSize 1,
// PrefillChunkSize > 0 new tokens over KVCacheSize tokens already cached; a
// decode row has PrefillChunkSize 0 and BatchSize requests each with
// KVCacheSize cached tokens.
type AttentionRow struct {
	BatchSize, KVCacheSize, PrefillChunkSize int
	IsPrefill                                bool
	// TimeMs maps op (AttentionOps) to its median time in ms; ops that did
	// not run for this input are absent.
	TimeMs map[string]float64
	Stats  map[string]Stat

	NEmbd, NQHead, NKVHead, BlockSize int
	NumTensorParallelWorkers          int
	MaxModelLen                       int
	AttentionBackend                  string
}

// CPUOverhead is one row of cpu_overhead.csv.
type CPUOverhead struct {
	Name      string
	BatchSize int
	Samples   int
	Stat      Stat
}

// ExtraOp is one row of extra_ops.csv.
type ExtraOp struct {
	Op        string
	NumTokens int
	KVTokens  int
	Samples   int
	Stat      Stat
}

// Profile is one device's profile of one model.
type Profile struct {
	// Device is Vidur's device name (a100, h100, h200); Model is "org/name".
	Device, Model string
	MLP           []MLPRow
	Attention     []AttentionRow
	// CPU maps "<name>" (batch 1) and "<name>@<batch>" to the median ms of
	// cpu_overhead.csv; nil when the folder has none.
	CPU map[string]float64
	// CPURows are cpu_overhead.csv's rows in file order.
	CPURows []CPUOverhead
	// Extra are extra_ops.csv's rows in file order; nil when absent.
	Extra []ExtraOp
}

// ExtraOps returns the rows of one extra op, in file order.
func (p *Profile) ExtraOps(op string) []ExtraOp {
	var out []ExtraOp
	for _, r := range p.Extra {
		if r.Op == op {
			out = append(out, r)
		}
	}
	return out
}

// DeviceForGPU maps a GPU name as CUDA reports it ("NVIDIA H100 80GB HBM3")
// to Vidur's device name, or "" when Vidur has none for it.
func DeviceForGPU(name string) string {
	n := strings.ToLower(name)
	for _, d := range []struct{ sub, dev string }{
		{"h200", "h200"}, {"h100", "h100"}, {"a100", "a100"}, {"a40", "a40"},
	} {
		if strings.Contains(n, d.sub) {
			return d.dev
		}
	}
	return ""
}

// MLPAt returns the mlp row with exactly num tokens.
func (p *Profile) MLPAt(numTokens int) (MLPRow, bool) {
	i := sort.Search(len(p.MLP), func(i int) bool { return p.MLP[i].NumTokens >= numTokens })
	if i < len(p.MLP) && p.MLP[i].NumTokens == numTokens {
		return p.MLP[i], true
	}
	return MLPRow{}, false
}

// LayerMs is the per-layer time Vidur's predictor sums for the token-parallel
// ops of this row (every MLP op but emb).
func (r MLPRow) LayerMs() float64 {
	var t float64
	for _, op := range MLPOps[1:] {
		t += r.TimeMs[op]
	}
	return t
}

func sortRows(p *Profile) {
	sort.SliceStable(p.MLP, func(i, j int) bool { return p.MLP[i].NumTokens < p.MLP[j].NumTokens })
	sort.SliceStable(p.Attention, func(i, j int) bool {
		a, b := p.Attention[i], p.Attention[j]
		if a.IsPrefill != b.IsPrefill {
			return a.IsPrefill
		}
		if a.PrefillChunkSize != b.PrefillChunkSize {
			return a.PrefillChunkSize < b.PrefillChunkSize
		}
		if a.BatchSize != b.BatchSize {
			return a.BatchSize < b.BatchSize
		}
		return a.KVCacheSize < b.KVCacheSize
	})
}

func cpuKey(name string, batch int) string {
	if batch == 1 {
		return name
	}
	return fmt.Sprintf("%s@%d", name, batch)
}
