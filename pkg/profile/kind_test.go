package profile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
)

func TestCheckParams(t *testing.T) {
	cases := []struct {
		name   string
		params map[string]any
		want   string // "" = valid
	}{
		{"gpu default", map[string]any{}, ""},
		{"gpu knobs", map[string]any{"source": "gpu", "hardware": "h100", "max_batch_size": 64, "quick": true, "cpu_batch_sizes": []any{1, 8}}, ""},
		{"recorded", map[string]any{"source": "recorded", "path": "testdata/profile/h100"}, ""},
		{"recorded without path", map[string]any{"source": "recorded"}, "with.path: source: recorded needs path"},
		{"gpu with path", map[string]any{"path": "x"}, "with.path: only for source: recorded"},
		{"bad source", map[string]any{"source": "cpu"}, `with.source: "cpu" is not a source`},
		{"bad hardware", map[string]any{"hardware": "v100"}, `with.hardware: "v100" is not a Vidur device name`},
		{"negative knob", map[string]any{"max_tokens": -1}, "with.max_tokens: must be positive"},
		{"negative warmup", map[string]any{"warmup": -1}, "with.warmup: must be >= 0"},
		{"bad cpu batch", map[string]any{"cpu_batch_sizes": []any{0}}, "with.cpu_batch_sizes[0]: must be >= 1"},
		{"typo", map[string]any{"max_token": 4}, "with.max_token: unknown parameter"},
		{"wrong type", map[string]any{"max_tokens": "many"}, "with.max_tokens: expected an integer, got a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Kind{}.CheckParams(tc.params)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestResources(t *testing.T) {
	if r := (Kind{}).Resources(map[string]any{}); r["gpu"] != 1 {
		t.Errorf("gpu source resources = %v", r)
	}
	if r := (Kind{}).Resources(map[string]any{"source": "recorded", "path": "x"}); len(r) != 0 {
		t.Errorf("recorded source resources = %v", r)
	}
}

// stagesDir makes a stages/ tree with a profile runner (a shell script that
// writes the synthetic profile) and a model card, and points gsim at it.
func stagesDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	src, _ := writeSynthetic(t)
	runner := filepath.Join(root, "stages", "profile")
	models := filepath.Join(root, "stages", "models", "Qwen3-0.6B")
	for _, d := range []string{runner, models} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := "# test double of run.py: $1 is --spec, $2 the spec\nout=$(dirname \"$2\")\necho '##gsim progress 1 2 half'\ncp -r " + src + "/. \"$out\"/\n"
	if err := os.WriteFile(filepath.Join(runner, "run.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "config.json"), []byte(`{"hidden_size": 1024}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GSIM_STAGES_DIR", filepath.Join(root, "stages"))
	return root
}

func TestFingerprintFollowsRunnerAndCard(t *testing.T) {
	root := stagesDir(t)
	fp1, err := Kind{}.Fingerprint(map[string]any{}, root)
	if err != nil {
		t.Fatal(err)
	}
	if fp1["runner:profile"] == "" || fp1["model:Qwen3-0.6B"] == "" {
		t.Fatalf("fingerprint %v lacks runner or model card", fp1)
	}
	card := filepath.Join(root, "stages", "models", "Qwen3-0.6B", "config.json")
	os.WriteFile(card, []byte(`{"hidden_size": 2048}`), 0o644)
	fp2, _ := Kind{}.Fingerprint(map[string]any{}, root)
	if fp2["model:Qwen3-0.6B"] == fp1["model:Qwen3-0.6B"] || fp2["runner:profile"] != fp1["runner:profile"] {
		t.Errorf("card change: %v -> %v", fp1, fp2)
	}
	os.WriteFile(filepath.Join(root, "stages", "profile", "extra.py"), []byte("x"), 0o644)
	fp3, _ := Kind{}.Fingerprint(map[string]any{}, root)
	if fp3["runner:profile"] == fp2["runner:profile"] {
		t.Error("runner change did not change the fingerprint")
	}
}

func TestFingerprintRecorded(t *testing.T) {
	src, dir := writeSynthetic(t)
	base := filepath.Dir(src)
	params := map[string]any{"source": "recorded", "path": filepath.Base(src)}
	fp1, err := Kind{}.Fingerprint(params, base)
	if err != nil {
		t.Fatal(err)
	}
	edit(t, filepath.Join(dir, MLPFile), func(s string) string { return strings.Replace(s, "0.011", "0.012", 1) })
	fp2, _ := Kind{}.Fingerprint(params, base)
	if len(fp1) != 1 || fp1["recorded:"+filepath.Base(src)] == fp2["recorded:"+filepath.Base(src)] {
		t.Errorf("recorded digest did not follow the content: %v %v", fp1, fp2)
	}
	if err := os.WriteFile(filepath.Join(base, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// It said "hash runner …: lstat …: no such file or directory".
	for path, want := range map[string]string{
		"missing": "with.path: recorded profile folder missing (" + filepath.Join(base, "missing") + ") does not exist; set it to a folder written by the profile stage",
		"afile":   "folder afile (" + filepath.Join(base, "afile") + ") is a file; set it to a folder",
	} {
		_, err := (Kind{}).Fingerprint(map[string]any{"source": "recorded", "path": path}, base)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", path, err, want)
		}
	}
}

func TestRunRecorded(t *testing.T) {
	src, dir := writeSynthetic(t)
	out := t.TempDir()
	spec := &stage.Spec{BaseDir: filepath.Dir(src), OutDir: out,
		Params: map[string]any{"source": "recorded", "path": filepath.Base(src), "hardware": "h100"}}
	var log strings.Builder
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{Log: &log}); err != nil {
		t.Fatal(err)
	}
	if err := (Kind{}).Validate(spec); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CPUOverheadFile, ExtraOpsFile, "profiling/compute/h100/Qwen/Qwen3-0.6B/attention.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("not copied: %s", f)
		}
	}
	if !strings.Contains(log.String(), "copied 4 files") {
		t.Errorf("log: %q", log.String())
	}

	spec.Params["hardware"] = "a100"
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{}); err == nil || !strings.Contains(err.Error(), "holds a h100 profile but with.hardware is a100") {
		t.Errorf("hardware mismatch: %v", err)
	}
	if err := (Kind{}).Validate(spec); err == nil {
		t.Error("Validate accepted a hardware mismatch")
	}

	spec.Params["hardware"] = "h100"
	edit(t, filepath.Join(dir, MLPFile), func(s string) string { return strings.Replace(s, "True", "yes", 1) })
	err := (Kind{}).Run(context.Background(), spec, stage.Env{})
	if err == nil || !strings.Contains(err.Error(), "recorded profile:") || !strings.Contains(err.Error(), "not a boolean") {
		t.Errorf("broken recorded profile: %v", err)
	}
}

func TestRunGPUCallsRunner(t *testing.T) {
	root := stagesDir(t)
	out := t.TempDir()
	spec := &stage.Spec{SchemaVersion: stage.SpecVersion, BaseDir: root, OutDir: out,
		Params: map[string]any{"python": "sh", "hardware": "h100"}}
	var got []string
	env := stage.Env{Progress: func(done, total float64, msg string) { got = append(got, msg) }}
	if err := (Kind{}).Run(context.Background(), spec, env); err != nil {
		t.Fatal(err)
	}
	if _, err := stage.ReadSpec(filepath.Join(out, stage.SpecFile)); err != nil {
		t.Errorf("runner got no spec: %v", err)
	}
	if len(got) != 1 || got[0] != "half" {
		t.Errorf("progress = %v", got)
	}
	if err := (Kind{}).Validate(spec); err != nil {
		t.Errorf("Validate: %v", err)
	}
	spec.Params["python"] = "false"
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{}); err == nil {
		t.Error("a failing runner gave no error")
	}
}
