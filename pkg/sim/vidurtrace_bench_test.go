package sim

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/workload"
)

// vidurTraceParams is the recipe of testdata/vidur/bench-10k: the 10,000
// requests real Vidur was timed on (its README has Vidur's numbers), so this
// benchmark is the side-by-side the speed target is stated against.
var vidurTraceParams = map[string]any{
	"model":        "Qwen/Qwen3-0.6B",
	"seed":         42,
	"num_requests": 10000,
	"arrival":      map[string]any{"process": "poisson", "rate": 8},
	"prefill":      map[string]any{"dist": "lognormal", "mean": 512, "std": 384, "min": 16, "max": 2048},
	"decode":       map[string]any{"dist": "lognormal", "mean": 128, "std": 96, "min": 8, "max": 512},
}

// BenchmarkStageVidurTrace10k times the sim stage's Run (simulation plus
// writing the canonical run folder to disk) on Vidur's benchmark trace with
// the recorded H100 profile, for the vllm policy (as Vidur ran it) and hf-cb.
// Compare with Vidur's "simulate" + "write outputs" phases on the same trace.
func BenchmarkStageVidurTrace10k(b *testing.B) {
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	wp, err := workload.DecodeParams(vidurTraceParams)
	if err != nil {
		b.Fatal(err)
	}
	w, err := workload.Generate(wp, root)
	if err != nil {
		b.Fatal(err)
	}
	wdir := filepath.Join(b.TempDir(), "workload")
	if err := schema.WriteWorkload(wdir, w); err != nil {
		b.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "testdata/vidur/bench-10k/workload_digest.txt"))
	if err != nil {
		b.Fatal(err)
	}
	if d, _ := schema.WorkloadDigest(wdir); d+"\n" != string(want) {
		b.Fatalf("regenerated trace digest %s differs from Vidur's trace %s", d, want)
	}
	kind := NewKind()
	for _, c := range []struct {
		policy string
		tokens bool
	}{{"vllm", true}, {"hf-cb", true}, {"vllm", false}, {"hf-cb", false}} {
		policy := c.policy
		name := policy
		if !c.tokens {
			// token_metrics: false leaves the simulation and the request and
			// step files: the part comparable with Vidur's "simulate" phase.
			name += "/no-token-file"
		}
		b.Run(name, func(b *testing.B) {
			params := map[string]any{
				"engine": "embedded", "scheduler": policy, "predictor": "vidur-profile",
				"profile": filepath.Join(root, "testdata/profile/h100"), "block_size": 256, "seed": 42,
			}
			if !c.tokens {
				params["token_metrics"] = false
			}
			if policy == "vllm" {
				params["batch_size_cap"], params["max_batch_tokens"] = 128, 4096
			}
			if err := kind.CheckParams(params); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				out := filepath.Join(b.TempDir(), "out")
				if err := os.Mkdir(out, 0o755); err != nil {
					b.Fatal(err)
				}
				spec := &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: root, Stage: "sim", Instance: "sim",
					Kind: "sim", Params: params, OutDir: out,
					Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: wdir}}}}
				if err := kind.Run(context.Background(), spec, stage.Env{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
