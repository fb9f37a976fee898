package predict

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// writeTables writes a hand-made export: index.json and plain CSV tables.
func writeTables(t *testing.T, files map[string]string, settings map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	tables := map[string]any{}
	for op, body := range files {
		keys := []map[string]any{{"name": "num_tokens"}}
		if strings.Count(strings.SplitN(body, "\n", 2)[0], ",") == 3 {
			keys = append(keys, map[string]any{"name": "b"})
		}
		tables[op] = map[string]any{"file": op + ".csv", "keys": keys}
		if err := os.WriteFile(filepath.Join(dir, op+".csv"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(map[string]any{"settings": settings, "tables": tables})
	if err := os.WriteFile(filepath.Join(dir, VidurTableIndexFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var testSettings = map[string]any{"kv_cache_prediction_granularity": 64, "attention_prefill_batching_overhead_fraction": 0.1,
	"attention_decode_batching_overhead_fraction": 0.1, "skip_cpu_overhead_modeling": true,
	"num_layers_per_pipeline_stage": 2, "post_attn_norm": true}

func TestVidurTableLookup(t *testing.T) {
	dir := writeTables(t, map[string]string{
		"one": "num_tokens_min,num_tokens_max,time_ms\n1,3,0.5\n4,4,0.25\n8,10,1.0\n",
		"two": "a,b_min,b_max,time_ms\n1,0,64,2.0\n1,128,128,3.0\n4,0,128,5.0\n",
	}, testSettings)
	tb, err := ReadVidurTables(dir)
	if err != nil {
		t.Fatal(err)
	}
	one, two := tb.tables["one"], tb.tables["two"]
	for _, c := range []struct {
		tb        *vidurTable
		lead, key int64
		want      float64
		miss      bool
	}{
		{one, 0, 1, 0.5, false},
		{one, 0, 3, 0.5, false},
		{one, 0, 4, 0.25, false},
		{one, 0, 10, 1.0, false},
		{one, 0, 5, 0.25, true}, // between runs: nearer 4 than 8
		{one, 0, 7, 1.0, true},
		{one, 0, 99, 1.0, true},
		{two, 1, 64, 2.0, false},
		{two, 1, 128, 3.0, false},
		{two, 4, 100, 5.0, false},
		{two, 2, 0, 2.0, true}, // no group 2: nearest lead 1
		{two, 9, 0, 5.0, true},
	} {
		before := c.tb.misses
		if got := c.tb.lookup(c.lead, c.key); got != c.want {
			t.Errorf("%s(%d, %d) = %v, want %v", c.tb.name, c.lead, c.key, got, c.want)
		}
		if miss := c.tb.misses > before; miss != c.miss {
			t.Errorf("%s(%d, %d): miss %v, want %v", c.tb.name, c.lead, c.key, miss, c.miss)
		}
	}
}

func TestVidurTableErrors(t *testing.T) {
	for name, c := range map[string]struct {
		body, want string
	}{
		"header":     {"num_tokens,time_ms\n1,1.0\n", "header has 2 columns"},
		"columns":    {"num_tokens_min,num_tokens_max,time_ms\n1,2\n", "one.csv:2: 2 columns"},
		"number":     {"num_tokens_min,num_tokens_max,time_ms\n1,x,1.0\n", "one.csv:2: column 2"},
		"overlap":    {"num_tokens_min,num_tokens_max,time_ms\n1,4,1.0\n4,5,2.0\n", "one.csv:3: key range 4..5"},
		"empty":      {"num_tokens_min,num_tokens_max,time_ms\n", "no rows"},
		"reversed":   {"num_tokens_min,num_tokens_max,time_ms\n5,4,1.0\n", "key range 5..4"},
		"not a time": {"num_tokens_min,num_tokens_max,time_ms\n1,4,fast\n", "one.csv:2: column 3"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ReadVidurTables(writeTables(t, map[string]string{"one": c.body}, testSettings))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := ReadVidurTables(t.TempDir()); err == nil || !strings.Contains(err.Error(), "raw/predictions") {
		t.Fatalf("missing folder: error %v", err)
	}
}

// TestVidurTableStep checks that a table-fed profile combines the tables as
// Vidur's ExecutionTime does (sum per layer, decode and prefill attention
// with their batching overheads, times the layers), and that it must have
// every table.
func TestVidurTableStep(t *testing.T) {
	files := map[string]string{}
	for _, op := range append(computeOps, "attn_kv_cache_save") {
		files[op] = "num_tokens_min,num_tokens_max,time_ms\n1,4096,0.001\n"
	}
	files["attn_decode"] = "batch_size,kv_cache_size_min,kv_cache_size_max,time_ms\n2,128,128,0.5\n"
	files["attn_prefill"] = "kv_cache_size,c_min,c_max,time_ms\n0,1,10000,0.25\n"
	dir := writeTables(t, files, testSettings)
	m := VidurModel{NumLayers: 2, NumQHeads: 16, NumKVHeads: 8}
	p, err := NewVidurProfile(nil, m, VidurOptions{Interpolation: InterpVidurTable, TablesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	dec := func(kv int64) sched.Entry {
		return sched.Entry{Req: sched.NewRequest(0, 0, 0, 1, 1), Tokens: 1, ProcessedBefore: kv}
	}
	// Two decodes averaging 100 tokens (rounded to 128) and one prefill of
	// 30: 10 per-layer ops, attention 0.5 × 1.1 + 0.25, over 2 layers.
	b := sched.Batch{Entries: []sched.Entry{dec(90), dec(110),
		{Req: sched.NewRequest(1, 0, 0, 30, 1), Tokens: 30, Prefill: true}}}
	want := 2 * (10*0.001 + 0.5*1.1 + 0.25)
	if got := p.StepMs(&b); math.Abs(got-want) > 1e-12 {
		t.Errorf("StepMs = %v, want %v", got, want)
	}
	if n := p.TableMisses(); n != 0 {
		t.Errorf("%d misses, want 0", n)
	}
	if d := p.Describe(); d["interpolation"] != InterpVidurTable || d["table_misses"] != int64(0) {
		t.Errorf("Describe = %v", d)
	}
	b = sched.Batch{Entries: []sched.Entry{dec(500)}}
	p.StepMs(&b)
	if p.TableMisses() == 0 {
		t.Error("a lone decode at 512 tokens is outside the table, yet no miss was counted")
	}
	if _, err := NewVidurProfile(nil, VidurModel{NumLayers: 3}, VidurOptions{Interpolation: InterpVidurTable, TablesDir: dir}); err == nil ||
		!strings.Contains(err.Error(), "2 layers") {
		t.Errorf("layer mismatch: error %v", err)
	}
	delete(files, "attn_decode")
	if _, err := NewVidurProfile(nil, m, VidurOptions{Interpolation: InterpVidurTable, TablesDir: writeTables(t, files, testSettings)}); err == nil ||
		!strings.Contains(err.Error(), "no attn_decode table") {
		t.Errorf("missing table: error %v", err)
	}
	if _, err := NewVidurProfile(nil, m, VidurOptions{Interpolation: InterpVidurTable}); err == nil {
		t.Error("no tables folder, no error")
	}
}

// TestRecordedVidurTables reads the tables exported from the recorded real
// Vidur run and checks that their runs cover exactly the grid Vidur
// predicted over (index.json's num_keys per table).
func TestRecordedVidurTables(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "testdata", "vidur", "qwen3-h100-vllm-300", "raw", "predictions")
	tb, err := ReadVidurTables(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, VidurTableIndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var idx vidurTableIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	g := tb.Settings.KVGranularity
	for op, e := range idx.Tables {
		last := e.Keys[len(e.Keys)-1].Name
		var n int64
		for _, runs := range tb.tables[op].groups {
			for _, r := range runs {
				switch last {
				case "kv_cache_size":
					if r.lo%g != 0 || r.hi%g != 0 {
						t.Errorf("%s: kv range %d..%d off the %d grid", op, r.lo, r.hi, g)
					}
					n += (r.hi-r.lo)/g + 1
				case "prefill_chunk_size_squared":
					lo, hi := int64(math.Sqrt(float64(r.lo))), int64(math.Sqrt(float64(r.hi)))
					if lo*lo != r.lo || hi*hi != r.hi {
						t.Errorf("%s: %d..%d are not squares", op, r.lo, r.hi)
					}
					n += hi - lo + 1
				default:
					n += r.hi - r.lo + 1
				}
			}
		}
		if n != e.NumKeys {
			t.Errorf("%s: runs cover %d keys, Vidur predicted %d", op, n, e.NumKeys)
		}
	}
	if len(idx.Tables) < 12 {
		t.Errorf("%d tables, want Vidur's 12 (no CPU overhead)", len(idx.Tables))
	}
}
