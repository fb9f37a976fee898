package vidur_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/vidur"
	"github.com/gsim-dev/gsim/pkg/workload"
)

// liveProfile is the recorded H100 profile of Qwen3-0.6B;
// $GSIM_VIDUR_TEST_PROFILE points elsewhere.
func liveProfile(t *testing.T) string {
	if p := os.Getenv("GSIM_VIDUR_TEST_PROFILE"); p != "" {
		return p
	}
	p, _ := filepath.Abs("../../testdata/profile/h100")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no recorded profile at %s (set GSIM_VIDUR_TEST_PROFILE)", p)
	}
	return p
}

// TestLiveVidurThroughSim runs real Vidur through the `sim` kind on a small
// generated workload and checks the canonical run it converts to. It needs a
// Vidur checkout: GSIM_VIDUR=<checkout> (plus GSIM_VIDUR_STUBS on Debian,
// see docs/vidur.md). A cold predictor cache costs about a minute.
func TestLiveVidurThroughSim(t *testing.T) {
	if os.Getenv("GSIM_VIDUR") == "" {
		t.Skip("GSIM_VIDUR not set: point it at a microsoft/vidur checkout to run real Vidur (docs/vidur.md)")
	}
	prof := liveProfile(t)
	base, _ := filepath.Abs("../..")
	workDir := liveWorkload(t, 40, 8, 7, [2]float64{300, 150}, [2]float64{40, 20}, [2]int64{16, 1024}, [2]int64{4, 128})

	kind := vidur.NewKind()
	params := map[string]any{"scheduler": "vllm", "profile": prof, "batch_size_cap": 64}
	if err := kind.CheckParams(params); err != nil {
		t.Fatal(err)
	}
	fp, err := kind.Fingerprint(params, base)
	if err != nil {
		t.Fatal(err)
	}
	if fp["runner:stages/vidur"] == "" {
		t.Fatalf("fingerprint lacks the shim's digest: %v", fp)
	}
	out := t.TempDir()
	spec := &stage.Spec{
		SchemaVersion: stage.SpecVersion, BaseDir: base, Stage: "vidur", Instance: "vidur", Kind: "vidur",
		Params: params, OutDir: out,
		Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: workDir}}},
	}
	logw := io.Writer(io.Discard)
	if testing.Verbose() {
		logw = os.Stderr
	}
	if err := kind.Run(context.Background(), spec, stage.Env{Log: logw}); err != nil {
		t.Fatal(err)
	}
	if err := kind.Validate(spec); err != nil {
		t.Fatal(err)
	}
	run, err := schema.ReadRun(out)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := schema.WorkloadDigest(workDir)
	w, err := schema.ReadWorkload(workDir)
	if err != nil {
		t.Fatal(err)
	}
	if run.Meta.RunType != schema.RunVidur || run.Meta.WorkloadDigest != digest {
		t.Fatalf("run_meta: type %q digest %q, want vidur %q", run.Meta.RunType, run.Meta.WorkloadDigest, digest)
	}
	if hd, _ := run.Meta.Engine["head_dim"].(float64); hd != 128 {
		t.Fatalf("Vidur ran with head_dim %v, want Qwen3-0.6B's 128", run.Meta.Engine["head_dim"])
	}
	if len(run.Requests) != len(w.Requests) || len(run.Steps) == 0 {
		t.Fatalf("%d requests (want %d), %d steps", len(run.Requests), len(w.Requests), len(run.Steps))
	}
	for i, r := range run.Requests {
		if r.ArrivalTimeNs != w.Requests[i].ArrivalTimeNs || r.TTFTNs <= 0 || r.NumDecodeTokensActual != w.Requests[i].NumDecodeTokens {
			t.Fatalf("request %d: %+v vs workload %+v", i, r, w.Requests[i])
		}
	}
}

// liveWorkload writes a Poisson workload of n requests with lognormal
// prefill and decode lengths (mean, std; clipped to min, max) for a live run.
func liveWorkload(t *testing.T, n int, rate float64, seed int64, prefill, decode [2]float64, pclip, dclip [2]int64) string {
	t.Helper()
	base, _ := filepath.Abs("../..")
	dir := t.TempDir()
	w, err := workload.Generate(workload.Params{
		Model: "Qwen/Qwen3-0.6B", Seed: seed, NumRequests: n,
		Arrival: workload.Arrival{Process: workload.Poisson, Rate: &rate},
		Prefill: workload.Lengths{Dist: workload.LogNormal, Mean: &prefill[0], Std: &prefill[1], Min: &pclip[0], Max: &pclip[1]},
		Decode:  workload.Lengths{Dist: workload.LogNormal, Mean: &decode[0], Std: &decode[1], Min: &dclip[0], Max: &dclip[1]},
	}, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	return dir
}
