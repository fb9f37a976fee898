package sim

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// TestVidurTableParams checks how interpolation: vidur-table finds Vidur's
// tables and what it says when it cannot.
func TestVidurTableParams(t *testing.T) {
	k := NewKind()
	if err := k.CheckParams(map[string]any{"interpolation": "vidur-table"}); err != nil {
		t.Errorf("vidur-table: %v", err)
	}
	if err := k.CheckParams(map[string]any{"vidur_tables": "x"}); err == nil || !strings.Contains(err.Error(), "with.vidur_tables") {
		t.Errorf("vidur_tables without vidur-table: err = %v", err)
	}
	root := repoRoot(t)
	rec := filepath.Join(root, "testdata", "vidur", "qwen3-h100-vllm-300")
	work := []stage.Input{{Instance: "workload", Kind: "workload", Dir: filepath.Join(rec, "workload")}}
	base := map[string]any{"scheduler": "vllm", "interpolation": "vidur-table", "block_size": 256, "num_blocks": 2592,
		"batch_size_cap": 128, "max_batch_tokens": 4096, "max_tokens": 4096, "token_metrics": false}
	for _, c := range []struct {
		name   string
		params map[string]any
		inputs map[string][]stage.Input
		want   string
	}{
		{"no tables", nil, map[string][]stage.Input{"workload": work}, "needs vidur output: add a vidur stage, whose raw/predictions hold Vidur's tables (or set with.vidur_tables) under needs: (needs now: workload)"},
		{"two runs", nil, map[string][]stage.Input{"workload": work,
			"a": {{Instance: "a", Kind: "vidur", Dir: rec}}, "b": {{Instance: "b", Kind: "vidur", Dir: rec}}}, "several needs hold a vidur output (a, b)"},
		{"bad folder", map[string]any{"vidur_tables": "testdata"}, map[string][]stage.Input{"workload": work}, "raw/predictions"},
		{"named folder", map[string]any{"vidur_tables": "testdata/vidur/qwen3-h100-vllm-300/raw/predictions"}, map[string][]stage.Input{"workload": work}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			params := map[string]any{}
			for k, v := range base {
				params[k] = v
			}
			for k, v := range c.params {
				params[k] = v
			}
			spec := &stage.Spec{Instance: "sim", Key: "k", BaseDir: root, OutDir: t.TempDir(), Params: params, Inputs: c.inputs}
			err := k.Run(context.Background(), spec, stage.Env{})
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}
