package vidur

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

func TestParamsCheck(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		path   string // the ParamError's path; "" for valid params
	}{
		{"defaults", map[string]any{}, ""},
		{"sarathi", map[string]any{"scheduler": "sarathi", "chunk_size": 256}, ""},
		{"shared embedded knobs", map[string]any{"safety_margin": 0.2, "activation_reserve_gb": 1.0, "token_metrics": false}, ""},
		{"embedded engine", map[string]any{"engine": "embedded"}, "engine"},
		{"engine spelled out", map[string]any{"engine": "vidur"}, "engine"},
		{"hf-cb is not vidur's", map[string]any{"scheduler": "hf-cb"}, "scheduler"},
		{"embedded predictor", map[string]any{"predictor": "vidur-profile"}, "predictor"},
		{"negative cap", map[string]any{"batch_size_cap": -1}, "batch_size_cap"},
		{"batch tokens below max_tokens", map[string]any{"max_batch_tokens": 1024}, "max_batch_tokens"},
		{"watermark", map[string]any{"watermark": 1.5}, "watermark"},
		{"device", map[string]any{"hardware": "tpu"}, "hardware"},
		{"network", map[string]any{"network_device": "ethernet"}, "network_device"},
		{"rf grid", map[string]any{"min_samples_split": []any{1}}, "min_samples_split"},
		{"cpu overhead", map[string]any{"cpu_overhead": true}, "cpu_overhead"},
		{"step model", map[string]any{"step_model": "m.json"}, "step_model"},
		{"typo", map[string]any{"batch_size_kap": 4}, "batch_size_kap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := NewKind().CheckParams(tc.params)
			if tc.path == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var pe *stage.ParamError
			if !errors.As(err, &pe) || pe.Path != tc.path {
				t.Fatalf("got %v, want a ParamError at %q", err, tc.path)
			}
		})
	}
}

func flagValue(args []string, flag string) (string, bool) {
	i := slices.Index(args, flag)
	if i < 0 {
		return "", false
	}
	if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
		return args[i+1], true
	}
	return "", true
}

func TestVidurArgs(t *testing.T) {
	prof := &resolvedProfile{model: "Qwen/Qwen3-0.6B", vidurDevice: "h100", blockSize: 32}
	tests := []struct {
		name   string
		params map[string]any
		want   map[string]string // flag -> value ("" for a bare flag)
		absent []string
	}{
		{"vllm defaults", map[string]any{}, map[string]string{
			"--replica_scheduler_config_type":                                            "vllm",
			"--vllm_scheduler_config_batch_size_cap":                                     "128",
			"--vllm_scheduler_config_max_tokens_in_batch":                                "4096",
			"--vllm_scheduler_config_block_size":                                         "32",
			"--replica_config_device":                                                    "h100",
			"--replica_config_model_name":                                                "Qwen/Qwen3-0.6B",
			"--request_generator_config_type":                                            "trace_replay",
			"--trace_request_generator_config_max_tokens":                                "4096",
			"--execution_time_predictor_config_type":                                     "random_forrest",
			"--random_forrest_execution_time_predictor_config_num_estimators":            "250",
			"--random_forrest_execution_time_predictor_config_max_depth":                 "16",
			"--random_forrest_execution_time_predictor_config_min_samples_split":         "2",
			"--random_forrest_execution_time_predictor_config_prediction_max_batch_size": "128",
			"--metrics_config_enable_chrome_trace":                                       "",
			"--no-metrics_config_store_plots":                                            "",
		}, []string{"--vllm_scheduler_config_num_blocks", "--seed", "--replica_config_memory_margin_fraction"}},
		{"sarathi knobs", map[string]any{"scheduler": "sarathi", "chunk_size": 256, "num_blocks": 1000, "watermark": 0.02, "seed": 3,
			"memory_utilization": 0.8, "batch_size_cap": 32}, map[string]string{
			"--sarathi_scheduler_config_chunk_size":                "256",
			"--sarathi_scheduler_config_num_blocks":                "1000",
			"--sarathi_scheduler_config_watermark_blocks_fraction": "0.02",
			"--sarathi_scheduler_config_batch_size_cap":            "32",
			"--seed": "3",
			"--replica_config_memory_margin_fraction": "0.19999999999999996",
		}, []string{"--sarathi_scheduler_config_max_tokens_in_batch", "--vllm_scheduler_config_batch_size_cap"}},
		{"orca, linear regression", map[string]any{"scheduler": "orca", "predictor": "linear_regression"}, map[string]string{
			"--orca_scheduler_config_batch_size_cap":                                 "128",
			"--linear_regression_execution_time_predictor_config_compute_input_file": "mlp.csv",
		}, []string{"--random_forrest_execution_time_predictor_config_num_estimators"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeParams(tc.params)
			if err != nil {
				t.Fatal(err)
			}
			args := vidurArgs(p, prof, "trace.csv", "mlp.csv", "attention.csv", "out", "cache")
			for f, v := range tc.want {
				got, ok := flagValue(args, f)
				if !ok || got != v {
					t.Errorf("%s = %q (present %v), want %q\nargs: %v", f, got, ok, v, args)
				}
			}
			for _, f := range tc.absent {
				if slices.Contains(args, f) {
					t.Errorf("%s should not be passed", f)
				}
			}
		})
	}
}

// Without an importable Vidur the real shim exits with its own code and the
// engine says how to get Vidur.
func TestRunWithoutVidur(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	base, _ := filepath.Abs("../..")
	fake := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fake, "vidur"), 0o755); err != nil {
		t.Fatal(err)
	}
	for f, body := range map[string]string{"__init__.py": "", "main.py": "import no_such_module_for_gsim\n"} {
		if err := os.WriteFile(filepath.Join(fake, "vidur", f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	workDir := t.TempDir()
	w := &schema.Workload{Meta: schema.WorkloadMeta{Model: "Qwen/Qwen3-0.6B"}, Requests: []schema.Request{
		{ID: 0, NumPrefillTokens: 8, NumDecodeTokens: 2, InterArrivalNs: 5, ArrivalTimeNs: 5}}}
	if err := schema.WriteWorkload(workDir, w); err != nil {
		t.Fatal(err)
	}
	spec := &stage.Spec{
		SchemaVersion: stage.SpecVersion, BaseDir: base, Instance: "vidur", OutDir: t.TempDir(),
		Params: map[string]any{"vidur_path": fake, "python": python, "cache_dir": t.TempDir(),
			"profile": writeTinyProfile(t)},
		Inputs: map[string][]stage.Input{"workload": {{Kind: "workload", Dir: workDir}}},
	}
	err := NewKind().Run(context.Background(), spec, stage.Env{})
	if err == nil || !strings.Contains(err.Error(), "cannot import Vidur") || !strings.Contains(err.Error(), "uses: sim") {
		t.Fatalf("got %v, want the cannot-import error that names engine: embedded", err)
	}
	t.Setenv("GSIM_VIDUR", "")
	spec.Params = map[string]any{}
	if err := NewKind().Run(context.Background(), spec, stage.Env{}); err == nil || !strings.Contains(err.Error(), "GSIM_VIDUR") {
		t.Fatalf("got %v, want an error naming GSIM_VIDUR", err)
	}
}

// writeTinyProfile writes a small valid Qwen3-0.6B profile (made-up times:
// only for tests that stop before Vidur trains on it).
func writeTinyProfile(t *testing.T) string {
	t.Helper()
	p := &profile.Profile{Device: "h100", Model: "Qwen/Qwen3-0.6B"}
	for _, n := range []int{1, 2, 4, 8} {
		r := profile.MLPRow{NumTokens: n, TimeMs: map[string]float64{}, NHead: 16, NKVHead: 8, NEmbd: 1024,
			NExpandedEmbd: 3072, VocabSize: 151936, UseGatedMLP: true, NumTensorParallelWorkers: 1}
		for i, op := range profile.MLPOps {
			r.TimeMs[op] = 0.01*float64(i+1) + 0.001*float64(n)
		}
		p.MLP = append(p.MLP, r)
	}
	attn := func(prefill bool, b, chunk, kv int) profile.AttentionRow {
		r := profile.AttentionRow{BatchSize: b, PrefillChunkSize: chunk, KVCacheSize: kv, IsPrefill: prefill,
			TimeMs: map[string]float64{"attn_input_reshape": 0.001, "attn_kv_cache_save": 0.002, "attn_output_reshape": 0.001},
			NEmbd:  1024, NQHead: 16, NKVHead: 8, BlockSize: 32, NumTensorParallelWorkers: 1, MaxModelLen: 4096,
			AttentionBackend: "paged|sdpa"}
		if prefill {
			r.TimeMs["attn_prefill"] = 0.01 * float64(chunk+kv) / 64
		} else {
			r.TimeMs["attn_decode"] = 0.01 * float64(b*kv) / 64
		}
		return r
	}
	p.Attention = []profile.AttentionRow{attn(true, 1, 64, 0), attn(true, 1, 64, 64), attn(false, 1, 0, 64), attn(false, 4, 0, 128)}
	root := t.TempDir()
	if err := profile.Write(root, p); err != nil {
		t.Fatal(err)
	}
	return root
}

// A missing model_config or profile was a bare "open …: no such file or
// directory" / "hash runner …: lstat …" without the param's name.
func TestFingerprintBadPaths(t *testing.T) {
	base, _ := filepath.Abs("../..")
	for param, want := range map[string]string{
		"model_config": "with.model_config: no such file no/such.json (" + filepath.Join(base, "no/such.json") + "); check the path",
		"profile":      "with.profile: no such folder no/such.json (" + filepath.Join(base, "no/such.json") + "); check the path",
	} {
		params := map[string]any{param: "no/such.json"}
		if _, err := NewKind().Fingerprint(params, base); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", param, err, want)
		}
	}
}
