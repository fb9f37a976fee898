package sim

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
)

// readDetail attaches the real bench's step_detail.csv, when the run has
// one, to the cell's steps (one row per step, in the same order).
func (c *fitCell) readDetail() error {
	path := filepath.Join(c.in.Dir, schema.StepDetailFile)
	if !schema.Exists(path) {
		return nil
	}
	rows, err := schema.ReadStepDetail(path)
	if err != nil {
		return err
	}
	if len(rows) != len(c.steps) {
		return fmt.Errorf("%s: %d rows for %d steps in %s; the two files must describe the same steps",
			path, len(rows), len(c.steps), schema.StepMetricsFile)
	}
	for i, r := range rows {
		d := &predict.StepDetail{Hit: -1, MaxContextTokens: r.MaxSeqlenK}
		if r.GraphHit == 0 || r.GraphHit == 1 {
			d.Hit = int8(r.GraphHit)
		}
		if r.SyncEndNs >= 0 && r.ComputeEndNs >= 0 {
			d.DeviceNs = max(r.SyncEndNs-r.ComputeEndNs, 0)
		}
		if r.SyncEndNs >= 0 && r.ComputeStartNs >= 0 {
			d.ComputeNs = max(r.SyncEndNs-r.ComputeStartNs, 0)
		}
		if r.QPadded > 0 && r.KVPadded > 0 && r.SeqlenKPadded > 0 {
			d.Key = predict.GraphKey{Q: r.QPadded, KV: r.KVPadded, SeqK: r.SeqlenKPadded}
		}
		c.steps[i].Detail = d
	}
	c.detail = true
	return nil
}

// mechanicsInputs says whether the mechanics form can be fitted: the
// default form was asked for (no with.features), every training run has a
// step_detail.csv with graph hits recorded, and the engine ran CUDA graphs
// with known padding. It returns the engine's graph keying.
func mechanicsInputs(cells []fitCell, p *FitParams) (predict.GraphConfig, bool) {
	var g predict.GraphConfig
	if len(p.Features) > 0 {
		return g, false
	}
	first := true
	for _, c := range cells {
		if !c.train {
			continue
		}
		if !c.detail || c.meta == nil || !graphsOn(c.meta.Engine["cuda_graphs"]) {
			return g, false
		}
		for _, s := range c.steps {
			if s.Detail.Hit < 0 {
				return g, false
			}
		}
		num := func(k string) int64 {
			v, _ := c.meta.Engine[k].(float64)
			return int64(v)
		}
		got := predict.GraphConfig{QPadding: num("q_padding_interval_size"), KVPadding: num("kv_padding_interval_size"),
			MaxBatchTokens: num("max_batch_tokens"), CacheTokens: num("num_blocks") * num("block_size"),
			SeqlenMin: predict.DefaultSeqlenMin, Capacity: int(num("max_cached_graphs"))}
		if p.QPadding != nil {
			got.QPadding = *p.QPadding
		}
		if p.KVPadding != nil {
			got.KVPadding = *p.KVPadding
		}
		if got.QPadding <= 0 || got.KVPadding <= 0 || got.MaxBatchTokens <= 0 || got.CacheTokens <= 0 {
			return g, false
		}
		if !first && got != g {
			return g, false
		}
		g, first = got, false
	}
	return g, !first
}

// warmKeys are the graphs the run's engine held when its replay started
// (run_meta extra.step_detail.graphs_at_start); nil when not recorded.
func (c *fitCell) warmKeys() []predict.GraphKey {
	{
		if c.meta == nil {
			return nil
		}
		sd, _ := c.meta.Extra["step_detail"].(map[string]any)
		list, _ := sd["graphs_at_start"].([]any)
		var out []predict.GraphKey
		for _, x := range list {
			s, _ := x.(string)
			parts := strings.Split(s, "x")
			if len(parts) != 3 {
				continue
			}
			var v [3]int64
			ok := true
			for i, p := range parts {
				n, err := strconv.ParseInt(p, 10, 64)
				ok = ok && err == nil
				v[i] = n
			}
			if ok {
				out = append(out, predict.GraphKey{Q: v[0], KV: v[1], SeqK: v[2]})
			}
		}
		return out
	}
}
