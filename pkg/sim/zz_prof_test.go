package sim

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/workload"
)

func TestZZProf(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ZZN"))
	if n == 0 {
		t.Skip()
	}
	root, _ := filepath.Abs("../..")
	params := map[string]any{}
	for k, v := range vidurTraceParams {
		params[k] = v
	}
	params["num_requests"] = n
	wp, err := workload.DecodeParams(params)
	if err != nil {
		t.Fatal(err)
	}
	w, err := workload.Generate(wp, root)
	if err != nil {
		t.Fatal(err)
	}
	wdir := filepath.Join(os.Getenv("ZZDIR"), "workload")
	if err := schema.WriteWorkload(wdir, w); err != nil {
		t.Fatal(err)
	}
	kind := NewKind(nil)
	sp := map[string]any{"engine": "embedded", "scheduler": "vllm", "predictor": "vidur-profile",
		"profile": filepath.Join(root, "testdata/profile/h100"), "block_size": 256, "batch_size_cap": 128, "max_batch_tokens": 4096}
	out := filepath.Join(os.Getenv("ZZDIR"), "out")
	os.RemoveAll(out)
	os.Mkdir(out, 0o755)
	spec := &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: root, Stage: "sim", Instance: "sim",
		Kind: "sim", Params: sp, OutDir: out,
		Inputs: map[string][]stage.Input{"workload": {{Instance: "workload", Kind: "workload", Dir: wdir}}}}
	t.Logf("workload ready")
	if err := kind.Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	if err := kind.Validate(spec); err != nil {
		t.Fatal(err)
	}
}
