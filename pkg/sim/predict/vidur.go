package predict

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

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
}

// NewVidurOptions returns Vidur's defaults: granularity 64, 10% batching
// overheads for GQA models, CPU overhead modeling off.
func NewVidurOptions() VidurOptions {
	return VidurOptions{KVGranularity: 64, PrefillBatchingOverhead: 0.1, DecodeBatchingOverhead: 0.1}
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
	ops     map[string]line
	kvSave  line
	prefill grid2 // (kv_cache_size, prefill_chunk_size²) → ms
	decode  grid2 // (batch_size, kv_cache_size) → ms
	cpu     map[string]line
	files   []string
	gqa     bool
}

// FindProfile locates mlp.csv and attention.csv under a profile folder
// (Vidur's profiling/compute/<device>/<org>/<model>/ layout, or flat). When
// several devices are present, hardware picks the one whose path contains
// it.
func FindProfile(root, hardware string) (mlp, attention, cpu string, err error) {
	var mlps []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "mlp.csv" {
			mlps = append(mlps, p)
		}
		return nil
	})
	if err != nil {
		return "", "", "", fmt.Errorf("profile %s: %w", root, err)
	}
	sort.Strings(mlps)
	var pick []string
	for _, p := range mlps {
		if hardware == "" || strings.Contains(strings.ToLower(p), strings.ToLower(hardware)) {
			pick = append(pick, p)
		}
	}
	if len(pick) == 0 && len(mlps) == 1 {
		pick = mlps
	}
	switch {
	case len(pick) == 0:
		return "", "", "", fmt.Errorf("profile %s: no mlp.csv for hardware %q (found %d); profile that device or set hardware to one of the profiled ones", root, hardware, len(mlps))
	case len(pick) > 1:
		return "", "", "", fmt.Errorf("profile %s: %d mlp.csv files match hardware %q (%s); name the device more exactly", root, len(pick), hardware, strings.Join(pick, ", "))
	}
	dir := filepath.Dir(pick[0])
	attention = filepath.Join(dir, "attention.csv")
	if _, err := os.Stat(attention); err != nil {
		return "", "", "", fmt.Errorf("profile %s: %s has no attention.csv beside it", root, pick[0])
	}
	cpu = filepath.Join(dir, "cpu_overhead.csv")
	if _, err := os.Stat(cpu); err != nil {
		cpu = ""
	}
	return pick[0], attention, cpu, nil
}

// NewVidurProfile reads the profile files. cpuPath may be empty; it is only
// read when o.CPUOverhead is set.
func NewVidurProfile(mlpPath, attnPath, cpuPath string, m VidurModel, o VidurOptions) (*VidurProfile, error) {
	if o.KVGranularity <= 0 {
		o.KVGranularity = 64
	}
	p := &VidurProfile{m: m, o: o, ops: map[string]line{}, files: []string{mlpPath, attnPath},
		gqa: m.NumQHeads > m.NumKVHeads}
	mt, err := readTable(mlpPath)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if err := mt.require("num_tokens", "time_stats.mlp_up_proj.median", "time_stats.attn_pre_proj.median"); err != nil {
		return nil, err
	}
	keep := rowFilter(mt, map[string]int64{"n_head": m.NumQHeads, "n_kv_head": m.NumKVHeads,
		"n_embd": m.Hidden, "num_tensor_parallel_workers": 1})
	if len(keep) == 0 {
		return nil, fmt.Errorf("%s: no rows for this model (n_head=%d, n_kv_head=%d, n_embd=%d, tensor parallel 1); was it profiled with the same model config?",
			mlpPath, m.NumQHeads, m.NumKVHeads, m.Hidden)
	}
	for _, op := range computeOps {
		var xs, ys []float64
		for _, i := range keep {
			x, err := mt.num(i, "num_tokens", 0)
			if err != nil {
				return nil, err
			}
			y, err := mt.num(i, "time_stats."+op+".median", 0)
			if err != nil {
				return nil, err
			}
			xs, ys = append(xs, x), append(ys, y)
		}
		p.ops[op] = newLine(xs, ys)
	}
	at, err := readTable(attnPath)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if err := at.require("batch_size", "prefill_chunk_size", "kv_cache_size",
		"time_stats.attn_prefill.median", "time_stats.attn_decode.median"); err != nil {
		return nil, err
	}
	akeep := rowFilter(at, map[string]int64{"n_q_head": m.NumQHeads, "n_kv_head": m.NumKVHeads,
		"n_embd": m.Hidden, "num_tensor_parallel_workers": 1})
	var kvX, kvY, pa, pb, py, da, db, dy []float64
	for _, i := range akeep {
		bs, _ := at.num(i, "batch_size", 0)
		chunk, err := at.num(i, "prefill_chunk_size", 0)
		if err != nil {
			return nil, err
		}
		kvs, err := at.num(i, "kv_cache_size", 0)
		if err != nil {
			return nil, err
		}
		save, err := at.num(i, "time_stats.attn_kv_cache_save.median", 0)
		if err != nil {
			return nil, err
		}
		kvX, kvY = append(kvX, math.Max(chunk, bs)), append(kvY, save)
		if chunk == 0 {
			y, err := at.num(i, "time_stats.attn_decode.median", 0)
			if err != nil {
				return nil, err
			}
			da, db, dy = append(da, bs), append(db, kvs), append(dy, y)
		} else {
			y, err := at.num(i, "time_stats.attn_prefill.median", 0)
			if err != nil {
				return nil, err
			}
			pa, pb, py = append(pa, kvs), append(pb, chunk*chunk), append(py, y)
		}
	}
	if len(pa) == 0 || len(da) == 0 {
		return nil, fmt.Errorf("%s: needs both prefill rows (prefill_chunk_size > 0) and decode rows (prefill_chunk_size = 0) for this model", attnPath)
	}
	p.kvSave = newLine(kvX, kvY)
	p.prefill = newGrid2(pa, pb, py)
	p.decode = newGrid2(da, db, dy)
	if o.CPUOverhead {
		if cpuPath == "" {
			return nil, fmt.Errorf("profile: cpu_overhead is on but the profile has no cpu_overhead.csv beside %s; profile CPU overheads or turn it off (Vidur's default)", mlpPath)
		}
		ct, err := readTable(cpuPath)
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		p.cpu = map[string]line{}
		for _, op := range cpuOps {
			col := op + "_median"
			if op == "ray_comm_time" {
				col = "ray_comm_time_mean"
			}
			var xs, ys []float64
			for i := range ct.rows {
				x, err := ct.num(i, "batch_size", 0)
				if err != nil {
					return nil, err
				}
				y, err := ct.num(i, col, 0)
				if err != nil {
					return nil, err
				}
				xs, ys = append(xs, x), append(ys, y)
			}
			p.cpu[op] = newLine(xs, ys)
		}
		p.files = append(p.files, cpuPath)
	}
	return p, nil
}

// rowFilter keeps rows whose listed columns (where present) equal the
// wanted values.
func rowFilter(t *table, want map[string]int64) []int {
	var keep []int
	for i := range t.rows {
		ok := true
		for col, v := range want {
			if !t.has(col) {
				continue
			}
			got, err := t.num(i, col, float64(v))
			if err != nil || int64(got) != v {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, i)
		}
	}
	return keep
}

func (p *VidurProfile) Name() string { return "vidur-profile" }
func (p *VidurProfile) GapNs() int64 { return p.o.GapNs }

func (p *VidurProfile) Describe() map[string]any {
	return map[string]any{"name": p.Name(), "files": p.files, "kv_cache_prediction_granularity": p.o.KVGranularity,
		"cpu_overhead": p.o.CPUOverhead, "interpolation": "linear over the profiled grid"}
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
	rounded := float64((total + 7) / 8 * 8)
	var block float64
	for _, op := range computeOps {
		if op == "post_attention_layernorm" && !p.m.PostAttnNorm {
			continue
		}
		block += p.ops[op].at(rounded)
	}
	block += p.kvSave.at(float64(total))
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

func (p *VidurProfile) StepNs(b *sched.Batch) int64 {
	return int64(math.Round(p.StepMs(b) * 1e6))
}
