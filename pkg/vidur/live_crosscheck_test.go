package vidur_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/vidur"
)

// TestLiveVidurTables runs real Vidur, then the embedded simulator on the
// same workload and settings timed by the prediction tables that Vidur run
// exported (interpolation: vidur-table), and requires the same run: every
// request's first token and completion within nanosecond rounding, and no
// lookup outside Vidur's tables. A memory-starved vllm case exercises
// preemption and restarts; sarathi exercises chunked prefills over a
// non-empty cache. Needs GSIM_VIDUR (docs/vidur.md).
func TestLiveVidurTables(t *testing.T) {
	if os.Getenv("GSIM_VIDUR") == "" {
		t.Skip("GSIM_VIDUR not set: point it at a microsoft/vidur checkout to run real Vidur (docs/vidur.md)")
	}
	prof := liveProfile(t)
	base, _ := filepath.Abs("../..")
	workDir := liveWorkload(t, 80, 20, 11, [2]float64{600, 400}, [2]float64{60, 40}, [2]int64{16, 2048}, [2]int64{4, 256})
	for _, c := range []struct {
		name   string
		params map[string]any
	}{
		{"vllm-preempting", map[string]any{"scheduler": "vllm", "batch_size_cap": 64, "max_batch_tokens": 4096, "num_blocks": 24}},
		{"sarathi", map[string]any{"scheduler": "sarathi", "batch_size_cap": 64, "chunk_size": 512}},
	} {
		t.Run(c.name, func(t *testing.T) {
			vkind, skind := vidur.NewKind(), sim.NewKind()
			inputs := map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: workDir}}}
			vp := map[string]any{"profile": prof}
			for k, v := range c.params {
				vp[k] = v
			}
			vout := t.TempDir()
			logw := io.Writer(io.Discard)
			if testing.Verbose() {
				logw = os.Stderr
			}
			if err := vkind.Run(context.Background(), &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: base, Stage: "vidur",
				Instance: "vidur", Kind: "vidur", Params: vp, OutDir: vout, Inputs: inputs}, stage.Env{Log: logw}); err != nil {
				t.Fatal(err)
			}
			ref, err := schema.ReadRun(vout)
			if err != nil {
				t.Fatal(err)
			}
			e := ref.Meta.Engine
			sp := map[string]any{"interpolation": "vidur-table"}
			for _, k := range []string{"block_size", "num_blocks", "max_tokens"} {
				sp[k] = e[k]
			}
			for k, v := range c.params {
				sp[k] = v
			}
			sp["num_blocks"] = e["num_blocks"] // what Vidur derived, where not given
			inputs["vidur"] = []stage.Input{{Instance: "vidur", Kind: "vidur", Dir: vout}}
			gout := t.TempDir()
			if err := skind.Run(context.Background(), &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: base, Stage: "embedded",
				Instance: "embedded", Kind: "sim", Params: sp, OutDir: gout, Inputs: inputs}, stage.Env{Log: logw}); err != nil {
				t.Fatal(err)
			}
			got, err := schema.ReadRun(gout)
			if err != nil {
				t.Fatal(err)
			}
			pred, _ := got.Meta.Engine["predictor"].(map[string]any)
			if n, _ := pred["table_misses"].(float64); n != 0 || pred["table_misses"] == nil {
				t.Errorf("table_misses %v, want 0", pred["table_misses"])
			}
			restarts := 0
			if v, ok := got.Meta.Engine["restarts"].(float64); ok {
				restarts = int(v)
			}
			tol := int64(len(ref.Steps)) + 1
			var worst int64
			byID := map[int64]schema.RequestMetric{}
			for _, g := range got.Requests {
				byID[g.RequestID] = g
			}
			for _, r := range ref.Requests {
				g, ok := byID[r.RequestID]
				if !ok {
					t.Fatalf("request %d: not simulated", r.RequestID)
				}
				worst = max(worst, abs(g.FirstTokenTimeNs-r.FirstTokenTimeNs), abs(g.CompletionTimeNs-r.CompletionTimeNs))
			}
			t.Logf("%s: Vidur %d iterations, gsim %d (%d restarts); largest request time difference %d ns (allowed %d)",
				c.name, len(ref.Steps), len(got.Steps), restarts, worst, tol)
			if len(ref.Steps) != len(got.Steps) || worst > tol {
				t.Errorf("%s: not Vidur's run: %s", c.name, fmt.Sprintf("%d vs %d iterations, times differ by up to %d ns", len(got.Steps), len(ref.Steps), worst))
			}
		})
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
