package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func synthetic() *Profile {
	p := &Profile{Device: "h100", Model: "Qwen/Qwen3-0.6B"}
	for _, n := range []int{1, 2, 4, 8} {
		r := MLPRow{NumTokens: n, TimeMs: map[string]float64{}, NHead: 16, NKVHead: 8, NEmbd: 1024,
			NExpandedEmbd: 3072, VocabSize: 151936, UseGatedMLP: true, NumTensorParallelWorkers: 1}
		for i, op := range MLPOps {
			r.TimeMs[op] = 0.01*float64(i+1) + 0.001*float64(n)
		}
		p.MLP = append(p.MLP, r)
	}
	attn := func(prefill bool, b, chunk, kv int) AttentionRow {
		r := AttentionRow{BatchSize: b, PrefillChunkSize: chunk, KVCacheSize: kv, IsPrefill: prefill,
			TimeMs: map[string]float64{"attn_input_reshape": 0.001, "attn_kv_cache_save": 0.002, "attn_output_reshape": 0.001},
			Stats:  map[string]Stat{"attn_kv_cache_save": {Min: 0.0019, Max: 0.0023, Mean: 0.0021, Median: 0.002, Std: 0.0001}},
			NEmbd:  1024, NQHead: 16, NKVHead: 8, BlockSize: 32, NumTensorParallelWorkers: 1, MaxModelLen: 4096,
			AttentionBackend: "paged|sdpa"}
		if prefill {
			r.TimeMs["attn_prefill"] = 0.01 * float64(chunk+kv) / 64
		} else {
			r.TimeMs["attn_decode"] = 0.01 * float64(b*kv) / 64
		}
		return r
	}
	p.Attention = []AttentionRow{attn(true, 1, 64, 0), attn(true, 1, 64, 64), attn(false, 1, 0, 64), attn(false, 4, 0, 128)}
	p.Extra = []ExtraOp{
		{Op: OpLMHead, NumTokens: 1, Samples: 20, Stat: Stat{Min: 0.1, Max: 0.2, Mean: 0.15, Median: 0.14, Std: 0.01}},
		{Op: OpAttnPacked, NumTokens: 4, KVTokens: 256, Samples: 10, Stat: Stat{Min: 0.1, Max: 0.2, Mean: 0.15, Median: 0.14, Std: 0.01}},
	}
	p.CPURows = []CPUOverhead{{Name: "step_overhead", BatchSize: 1, Samples: 10, Stat: Stat{Min: -0.01, Max: 0.5, Mean: 0.2, Median: 0.21, Std: 0.1}}}
	return p
}

func writeSynthetic(t *testing.T) (root, dir string) {
	t.Helper()
	root = t.TempDir()
	if err := Write(root, synthetic()); err != nil {
		t.Fatal(err)
	}
	return root, filepath.Join(root, "profiling", "compute", "h100", "Qwen", "Qwen3-0.6B")
}

func TestWriteReadRoundTrip(t *testing.T) {
	root, _ := writeSynthetic(t)
	if err := Validate(root); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	p, err := Read(root)
	if err != nil {
		t.Fatal(err)
	}
	want := synthetic()
	if p.Device != "h100" || p.Model != "Qwen/Qwen3-0.6B" {
		t.Fatalf("device/model = %q %q", p.Device, p.Model)
	}
	if len(p.MLP) != len(want.MLP) || len(p.Attention) != len(want.Attention) {
		t.Fatalf("rows: %d mlp, %d attention", len(p.MLP), len(p.Attention))
	}
	for i, r := range p.MLP {
		for op, v := range want.MLP[i].TimeMs {
			if r.TimeMs[op] != v {
				t.Errorf("mlp row %d op %s = %v, want %v", i, op, r.TimeMs[op], v)
			}
		}
	}
	for _, r := range p.Attention {
		if _, ok := r.TimeMs["attn_decode"]; ok == r.IsPrefill {
			t.Errorf("attention row %+v: attn_decode present = %v", r, ok)
		}
		if r.Stats["attn_kv_cache_save"].Max != 0.0023 {
			t.Errorf("kv save stats lost: %+v", r.Stats["attn_kv_cache_save"])
		}
	}
	if got := p.CPU["step_overhead"]; got != 0.21 {
		t.Errorf("CPU[step_overhead] = %v", got)
	}
	if x := p.ExtraOps(OpAttnPacked); len(x) != 1 || x[0].KVTokens != 256 || x[0].Stat.Median != 0.14 {
		t.Errorf("ExtraOps(attn_packed) = %+v", x)
	}
	if r, ok := p.MLPAt(4); !ok || r.NumTokens != 4 {
		t.Errorf("MLPAt(4) = %+v, %v", r, ok)
	}
	if _, ok := p.MLPAt(3); ok {
		t.Error("MLPAt(3) found a row that does not exist")
	}
}

// TestHeaderIsVidurs pins the header against the one in Vidur's own
// data/profiling/compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv.
func TestHeaderIsVidurs(t *testing.T) {
	const vidur = "time_stats.emb.min,time_stats.emb.max,time_stats.emb.mean,time_stats.emb.median,time_stats.emb.std,time_stats.input_layernorm.min,time_stats.input_layernorm.max,time_stats.input_layernorm.mean,time_stats.input_layernorm.median,time_stats.input_layernorm.std,time_stats.attn_pre_proj.min,time_stats.attn_pre_proj.max,time_stats.attn_pre_proj.mean,time_stats.attn_pre_proj.median,time_stats.attn_pre_proj.std,time_stats.attn_rope.min,time_stats.attn_rope.max,time_stats.attn_rope.mean,time_stats.attn_rope.median,time_stats.attn_rope.std,time_stats.attn_post_proj.min,time_stats.attn_post_proj.max,time_stats.attn_post_proj.mean,time_stats.attn_post_proj.median,time_stats.attn_post_proj.std,time_stats.post_attention_layernorm.min,time_stats.post_attention_layernorm.max,time_stats.post_attention_layernorm.mean,time_stats.post_attention_layernorm.median,time_stats.post_attention_layernorm.std,time_stats.mlp_up_proj.min,time_stats.mlp_up_proj.max,time_stats.mlp_up_proj.mean,time_stats.mlp_up_proj.median,time_stats.mlp_up_proj.std,time_stats.mlp_act.min,time_stats.mlp_act.max,time_stats.mlp_act.mean,time_stats.mlp_act.median,time_stats.mlp_act.std,time_stats.mlp_down_proj.min,time_stats.mlp_down_proj.max,time_stats.mlp_down_proj.mean,time_stats.mlp_down_proj.median,time_stats.mlp_down_proj.std,time_stats.add.min,time_stats.add.max,time_stats.add.mean,time_stats.add.median,time_stats.add.std,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers"
	if got := strings.Join(MLPColumns(), ","); got != vidur {
		t.Errorf("mlp header differs from Vidur's:\n got %s\nwant %s", got, vidur)
	}
}

func TestDeviceForGPU(t *testing.T) {
	for name, want := range map[string]string{
		"NVIDIA H100 80GB HBM3": "h100", "NVIDIA H200": "h200", "NVIDIA A100-SXM4-80GB": "a100",
		"NVIDIA A40": "a40", "NVIDIA L4": "",
	} {
		if got := DeviceForGPU(name); got != want {
			t.Errorf("DeviceForGPU(%q) = %q, want %q", name, got, want)
		}
	}
}

// edit rewrites one file of a written profile with f applied to its text.
func edit(t *testing.T, path string, f func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(f(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}

func replaceCell(row, col int) func(string, string) func(string) string {
	return func(_ string, v string) func(string) string {
		return func(s string) string {
			lines := strings.Split(s, "\n")
			f := strings.Split(lines[row-1], ",")
			f[col-1] = v
			lines[row-1] = strings.Join(f, ",")
			return strings.Join(lines, "\n")
		}
	}
}

func TestValidateErrors(t *testing.T) {
	mlpCol := func(name string) int {
		for i, c := range MLPColumns() {
			if c == name {
				return i + 1
			}
		}
		t.Fatalf("no mlp column %s", name)
		return 0
	}
	attnCol := func(name string) int {
		for i, c := range AttentionColumns() {
			if c == name {
				return i + 1
			}
		}
		t.Fatalf("no attention column %s", name)
		return 0
	}
	set := func(file string, row, col int, v string) func(root, dir string) {
		return func(root, dir string) {
			p := filepath.Join(dir, file)
			if file == CPUOverheadFile || file == ExtraOpsFile {
				p = filepath.Join(root, file)
			}
			edit(t, p, replaceCell(row, col)("", v))
		}
	}
	cases := []struct {
		name   string
		break_ func(root, dir string)
		want   string // substring of the error
		row    int
		col    int
	}{
		{"no profile", func(root, dir string) { os.RemoveAll(filepath.Join(root, "profiling")) }, "no <device>/<org>/<model>/mlp.csv", 0, 0},
		{"two profiles", func(root, dir string) {
			other := filepath.Join(root, "profiling", "compute", "a100", "Qwen", "Qwen3-0.6B")
			os.MkdirAll(other, 0o755)
			os.WriteFile(filepath.Join(other, MLPFile), nil, 0o644)
		}, "holds several profiles", 0, 0},
		{"missing attention", func(root, dir string) { os.Remove(filepath.Join(dir, AttentionFile)) }, "cannot open", 0, 0},
		{"empty mlp", func(root, dir string) { os.WriteFile(filepath.Join(dir, MLPFile), nil, 0o644) }, "empty file", 0, 0},
		{"renamed column", set(MLPFile, 1, 3, "time_stats.emb.avg"), `header has "time_stats.emb.avg"`, 1, 3},
		{"missing column", func(root, dir string) {
			edit(t, filepath.Join(dir, MLPFile), func(s string) string {
				lines := strings.Split(s, "\n")
				for i := range lines {
					if lines[i] != "" {
						lines[i] = lines[i][:strings.LastIndex(lines[i], ",")]
					}
				}
				return strings.Join(lines, "\n")
			})
		}, "header ends early", 1, len(MLPColumns())},
		{"extra column", func(root, dir string) {
			edit(t, filepath.Join(dir, AttentionFile), func(s string) string {
				return strings.Replace(s, "attention_backend\n", "attention_backend,extra\n", 1)
			})
		}, "unexpected extra column", 1, len(AttentionColumns()) + 1},
		{"short row", func(root, dir string) {
			edit(t, filepath.Join(dir, MLPFile), func(s string) string {
				lines := strings.Split(s, "\n")
				lines[2] = lines[2][:strings.LastIndex(lines[2], ",")]
				return strings.Join(lines, "\n")
			})
		}, "has 57 fields", 3, 0},
		{"no rows", func(root, dir string) {
			edit(t, filepath.Join(dir, MLPFile), func(s string) string { return strings.SplitN(s, "\n", 2)[0] + "\n" })
		}, "no data rows", 2, 0},
		{"bad csv", func(root, dir string) {
			edit(t, filepath.Join(dir, MLPFile), func(s string) string { return strings.Replace(s, "True", `"Tr"ue`, 1) })
		}, "bad CSV", 2, -1},
		{"not a number", set(MLPFile, 2, mlpCol("time_stats.attn_rope.max"), "fast"), `not a number: "fast"`, 2, mlpCol("time_stats.attn_rope.max")},
		{"nan", set(MLPFile, 3, mlpCol("time_stats.add.mean"), "NaN"), "not a finite number", 3, mlpCol("time_stats.add.mean")},
		{"negative", set(MLPFile, 2, mlpCol("time_stats.emb.std"), "-1"), "negative time", 2, mlpCol("time_stats.emb.std")},
		{"median above max", set(MLPFile, 2, mlpCol("time_stats.emb.median"), "9"), "median 9 is outside", 2, mlpCol("time_stats.emb.median")},
		{"mean below min", set(MLPFile, 2, mlpCol("time_stats.emb.mean"), "0"), "mean 0 is outside", 2, mlpCol("time_stats.emb.mean")},
		{"half empty stat", set(MLPFile, 2, mlpCol("time_stats.emb.min"), ""), "all set or all empty", 2, mlpCol("time_stats.emb.min")},
		{"mlp op missing", func(root, dir string) {
			for _, s := range Stats {
				set(MLPFile, 2, mlpCol("time_stats.mlp_act."+s), "")(root, dir)
			}
		}, "op mlp_act has no timings", 2, mlpCol("time_stats.mlp_act.min")},
		{"not an integer", set(MLPFile, 2, mlpCol("num_tokens"), "1.5"), `not an integer: "1.5"`, 2, mlpCol("num_tokens")},
		{"zero tokens", set(MLPFile, 2, mlpCol("num_tokens"), "0"), "must be at least 1", 2, mlpCol("num_tokens")},
		{"bad bool", set(MLPFile, 2, mlpCol("use_gated_mlp"), "yes"), "not a boolean", 2, mlpCol("use_gated_mlp")},
		{"duplicate tokens", set(MLPFile, 3, mlpCol("num_tokens"), "1"), "repeats row 2", 3, mlpCol("num_tokens")},
		{"shape changes", set(MLPFile, 4, mlpCol("n_embd"), "2048"), "the first row has 1024", 4, mlpCol("n_embd")},
		{"decode with chunk", set(AttentionFile, 4, attnCol("prefill_chunk_size"), "64"), "decode row has prefill_chunk_size 0", 4, attnCol("prefill_chunk_size")},
		{"decode without kv", set(AttentionFile, 4, attnCol("kv_cache_size"), "0"), "needs kv_cache_size > 0", 4, attnCol("kv_cache_size")},
		{"prefill batch", set(AttentionFile, 2, attnCol("batch_size"), "2"), "batch_size 1", 2, attnCol("batch_size")},
		{"prefill no chunk", set(AttentionFile, 2, attnCol("prefill_chunk_size"), "0"), "needs prefill_chunk_size > 0", 2, attnCol("prefill_chunk_size")},
		{"prefill too long", set(AttentionFile, 3, attnCol("kv_cache_size"), "4090"), "exceeds max_model_len", 3, attnCol("kv_cache_size")},
		{"decode too long", set(AttentionFile, 4, attnCol("kv_cache_size"), "5000"), "exceeds max_model_len", 4, attnCol("kv_cache_size")},
		{"prefill timing missing", func(root, dir string) {
			for _, s := range Stats {
				set(AttentionFile, 2, attnCol("time_stats.attn_prefill."+s), "")(root, dir)
			}
		}, "op attn_prefill has no timings", 2, attnCol("time_stats.attn_prefill.min")},
		{"no backend", set(AttentionFile, 2, attnCol("attention_backend"), ""), "name the attention backend", 2, attnCol("attention_backend")},
		{"duplicate attention", set(AttentionFile, 3, attnCol("kv_cache_size"), "0"), "same (is_prefill", 3, attnCol("kv_cache_size")},
		{"block size changes", set(AttentionFile, 5, attnCol("block_size"), "16"), "the first row has 32", 5, attnCol("block_size")},
		{"cpu header", set(CPUOverheadFile, 1, 1, "metric"), `header has "metric"`, 1, 1},
		{"cpu number", set(CPUOverheadFile, 2, 4, "x"), "not a finite number", 2, 4},
		{"cpu name", set(CPUOverheadFile, 2, 1, ""), "empty name", 2, 1},
		{"cpu median", set(CPUOverheadFile, 2, 4, "7"), "median 7 is outside", 2, 4},
		{"extra header", set(ExtraOpsFile, 1, 2, "tokens"), `header has "tokens"`, 1, 2},
		{"extra negative", set(ExtraOpsFile, 2, 5, "-0.1"), "negative time", 2, 5},
		{"extra op", set(ExtraOpsFile, 2, 1, ""), "empty op name", 2, 1},
		{"extra duplicate", func(root, dir string) {
			set(ExtraOpsFile, 3, 1, OpLMHead)(root, dir)
			set(ExtraOpsFile, 3, 2, "1")(root, dir)
			set(ExtraOpsFile, 3, 3, "0")(root, dir)
		}, "same (op, num_tokens, kv_tokens) as row 2", 3, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, dir := writeSynthetic(t)
			tc.break_(root, dir)
			err := Validate(root)
			if err == nil {
				t.Fatal("Validate accepted a broken profile")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if _, rerr := Read(root); rerr == nil {
				t.Fatal("Read accepted a broken profile")
			}
			if tc.row == 0 && tc.col == 0 {
				return
			}
			var pe *Error
			found := false
			for _, e := range unjoin(err) {
				if errors.As(e, &pe) && pe.Row == tc.row && (pe.Col == tc.col || tc.col < 0) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no error at row %d column %d in %q", tc.row, tc.col, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestManyErrorsAreCapped(t *testing.T) {
	root, dir := writeSynthetic(t)
	edit(t, filepath.Join(dir, MLPFile), func(s string) string {
		lines := strings.Split(s, "\n")
		for i := 1; i < len(lines); i++ {
			lines[i] = strings.ReplaceAll(lines[i], "0.0", "x0.0")
		}
		return strings.Join(lines, "\n")
	})
	err := Validate(root)
	if err == nil || !strings.Contains(err.Error(), "more problems") {
		t.Fatalf("want a capped error list, got %v", err)
	}
	if n := len(unjoin(err)); n != maxErrors+1 {
		t.Fatalf("got %d errors, want %d", n, maxErrors+1)
	}
}
