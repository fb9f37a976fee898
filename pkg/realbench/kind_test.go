package realbench

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

const recorded = "../../testdata/real/h100-qwen3-0.6b"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCheckParams(t *testing.T) {
	cases := []struct {
		name   string
		params map[string]any
		want   []string // substrings; none means valid
	}{
		{"defaults", map[string]any{}, nil},
		{"full", map[string]any{"scheduler": "prefill_first", "hardware": "H100", "cuda_graphs": false,
			"num_blocks": 512, "memory_share": 0.5, "timestamps": false, "python": "/usr/bin/python3"}, nil},
		{"unknown key", map[string]any{"schedular": "fifo"}, []string{"schedular"}},
		{"bad values", map[string]any{"scheduler": "lifo", "hardware": "v100", "block_size": 0, "memory_share": 2.0},
			[]string{"with.scheduler", "with.hardware", "with.block_size", "with.memory_share"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Kind{}.CheckParams(c.params)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCommandPicksInterpreter(t *testing.T) {
	t.Setenv("GSIM_PYTHON", "")
	if got := Command(Params{}, "/r", "/s.json").Argv; strings.Join(got, " ") != "python3 /r/run.py --spec /s.json" {
		t.Errorf("default argv %q", got)
	}
	t.Setenv("GSIM_PYTHON", "/opt/venv/bin/python")
	if got := Command(Params{}, "/r", "/s.json").Argv[0]; got != "/opt/venv/bin/python" {
		t.Errorf("GSIM_PYTHON ignored: %q", got)
	}
	if got := Command(Params{Python: "/x/py"}, "/r", "/s.json").Argv[0]; got != "/x/py" {
		t.Errorf("with.python ignored: %q", got)
	}
}

func TestFingerprintFollowsRunnerAndModelCard(t *testing.T) {
	fp, err := Kind{}.Fingerprint(map[string]any{}, repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if fp["runner:real_bench"] == "" || fp["runner:common"] == "" || fp["model:Qwen3-0.6B"] == "" {
		t.Fatalf("fingerprint %v lacks the runner, the code it shares (stages/common) or the model card", fp)
	}
	if _, err := (Kind{}).Fingerprint(map[string]any{"model_config": "no/such"}, repoRoot(t)); err == nil {
		t.Error("a missing model card must be an error")
	}
}

// fakeRunner is an interpreter stand-in: it saves its arguments and the spec
// it was given, then exits with $FAKE_RC.
func fakeRunner(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "fake-python")
	script := "#!/bin/sh\necho \"$@\" > \"$FAKE_DIR/args\"\ncp \"$3\" \"$FAKE_DIR/spec.json\"\necho runner says hello\nexit $FAKE_RC\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func benchSpec(t *testing.T, params map[string]any, workload string) *stage.Spec {
	t.Helper()
	s := &stage.Spec{
		SchemaVersion: stage.SpecVersion, Stage: "bench", Instance: "bench[rate=6]", Kind: "real-bench",
		BaseDir: repoRoot(t), Params: params, OutDir: t.TempDir(), Inputs: map[string][]stage.Input{},
	}
	if workload != "" {
		s.Inputs["workload"] = []stage.Input{{Instance: "workload", Kind: "workload", Holds: stage.HoldsWorkload, Dir: workload}}
	}
	return s
}

// A real-bench stage finds its workload by what its needs hold, not by a
// need named "workload": with two workload stages it runs the one that
// with.workload names, and the runner (which knows neither the choosing
// param nor other needs) gets exactly that workload as its input.
func TestRunFindsWorkloadByKind(t *testing.T) {
	tmp := t.TempDir()
	py := fakeRunner(t, tmp)
	t.Setenv("FAKE_DIR", tmp)
	t.Setenv("FAKE_RC", "0")
	wl, _ := filepath.Abs(filepath.Join(recorded, "rate-6", "workload"))
	other := t.TempDir()
	spec := benchSpec(t, map[string]any{"python": py, "workload": "h1-workload"}, "")
	spec.Inputs = map[string][]stage.Input{
		"train-workload": {{Instance: "train-workload", Kind: "workload", Holds: stage.HoldsWorkload, Dir: other}},
		"h1-workload":    {{Instance: "h1-workload", Kind: "workload", Holds: stage.HoldsWorkload, Dir: wl}},
	}
	if err := (Kind{}).CheckParams(spec.Params); err != nil {
		t.Fatal(err)
	}
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	got, err := stage.ReadSpec(filepath.Join(tmp, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Inputs) != 1 || len(got.Inputs["workload"]) != 1 || got.Inputs["workload"][0].Dir != wl {
		t.Errorf("runner got inputs %v, want only workload = %s", got.Inputs, wl)
	}
	if _, ok := got.Params["workload"]; ok {
		t.Errorf("runner got the choosing param: %v", got.Params)
	}
	// Without the choice the two workloads are ambiguous; the error names
	// the param to set.
	delete(spec.Params, "workload")
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{}); err == nil ||
		!strings.Contains(err.Error(), "several needs hold a workload (h1-workload, train-workload): choose one with workload: <stage>") {
		t.Errorf("two workloads, no choice: %v", err)
	}
}

func TestRunWiresSpecAndMapsRefusals(t *testing.T) {
	tmp := t.TempDir()
	py := fakeRunner(t, tmp)
	t.Setenv("FAKE_DIR", tmp)
	wl, _ := filepath.Abs(filepath.Join(recorded, "rate-6", "workload"))

	t.Setenv("FAKE_RC", "0")
	spec := benchSpec(t, map[string]any{"python": py, "model_config": "stages/models/Qwen3-0.6B"}, wl)
	var log strings.Builder
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{Log: &log}); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(filepath.Join(tmp, "args"))
	if f := strings.Fields(string(args)); len(f) != 3 || !strings.HasSuffix(f[0], "stages/real_bench/run.py") || f[1] != "--spec" {
		t.Errorf("runner args %q", args)
	}
	if strings.HasPrefix(strings.Fields(string(args))[2], spec.OutDir) {
		t.Error("spec.json was written inside OutDir; the output folder must hold only the run")
	}
	if ents, _ := os.ReadDir(spec.OutDir); len(ents) != 0 {
		t.Errorf("OutDir holds %d entries after a runner that wrote nothing", len(ents))
	}
	got, err := stage.ReadSpec(filepath.Join(tmp, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.OutDir != spec.OutDir || got.Inputs["workload"][0].Dir != wl {
		t.Errorf("runner got out_dir %q, workload %v", got.OutDir, got.Inputs["workload"])
	}
	if mc := got.Params["model_config"]; mc != filepath.Join(repoRoot(t), "stages/models/Qwen3-0.6B") {
		t.Errorf("model_config %v not made absolute", mc)
	}
	if !strings.Contains(log.String(), "runner says hello") {
		t.Errorf("runner output not in the stage log: %q", log.String())
	}

	for rc, want := range map[string]string{
		"3": "allow_hardware_mismatch: true",
		"4": "needs a CUDA GPU",
		"1": "exited with code 1",
	} {
		t.Setenv("FAKE_RC", rc)
		err := (Kind{}).Run(context.Background(), benchSpec(t, map[string]any{"python": py}, wl), stage.Env{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("exit %s: error %v, want it to mention %q", rc, err, want)
		}
		var ee *stage.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("exit %s: the ExitError (command, log tail) is lost: %v", rc, err)
		}
	}

	if err := (Kind{}).Run(context.Background(), benchSpec(t, map[string]any{"python": py}, ""), stage.Env{}); err == nil ||
		!strings.Contains(err.Error(), "needs workload: add a workload stage under needs:") {
		t.Errorf("missing workload: %v", err)
	}
}

// The real runner, run by a plain python3 without a GPU, must refuse with
// exit 4 and the Go side must say what to do.
func TestRealRunnerWithoutGPU(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if exec.Command(py, "-c", "import torch; assert torch.cuda.is_available()").Run() == nil {
		t.Skip("this machine has a CUDA GPU")
	}
	wl, _ := filepath.Abs(filepath.Join(recorded, "rate-6", "workload"))
	err = (Kind{}).Run(context.Background(), benchSpec(t, map[string]any{"python": py}, wl), stage.Env{})
	var ee *stage.ExitError
	if !errors.As(err, &ee) || ee.ExitCode != ExitNoCUDA {
		t.Fatalf("want exit %d, got %v", ExitNoCUDA, err)
	}
	for _, want := range []string{"needs a CUDA GPU", "replay", "no CUDA GPU is visible"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func replaySpec(t *testing.T, path, workload string) *stage.Spec {
	t.Helper()
	s := benchSpec(t, map[string]any{"path": path}, workload)
	s.Kind = "replay"
	return s
}

func TestReplay(t *testing.T) {
	root := repoRoot(t)
	run := "testdata/real/h100-qwen3-0.6b/rate-6/run"
	wl := filepath.Join(root, "testdata/real/h100-qwen3-0.6b/rate-6/workload")
	other := filepath.Join(root, "testdata/real/h100-qwen3-0.6b/rate-4/workload")

	t.Run("ok", func(t *testing.T) {
		spec := replaySpec(t, run, wl)
		// Progress fills: it ends at its total, never going back.
		var last [2]float64
		env := stage.Env{Progress: func(done, total float64, _ string) {
			if done < last[0] || total <= 0 {
				t.Errorf("progress %v/%v after %v/%v", done, total, last[0], last[1])
			}
			last = [2]float64{done, total}
		}}
		if err := (ReplayKind{}).Run(context.Background(), spec, env); err != nil {
			t.Fatal(err)
		}
		if last[1] == 0 || last[0] != last[1] {
			t.Errorf("replay's progress ended at %v/%v, not full", last[0], last[1])
		}
		if err := (ReplayKind{}).Validate(spec); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{schema.RequestMetricsFile, schema.TokenMetricsFile, schema.StepMetricsFile, schema.RunMetaFile} {
			// The recording may hold f gzipped; the replayed copy is plain.
			a := readMaybeGzipped(t, filepath.Join(root, run, f))
			b, err := os.ReadFile(filepath.Join(spec.OutDir, f))
			if err != nil || len(a) == 0 || string(a) != string(b) {
				t.Errorf("%s not copied verbatim (%v)", f, err)
			}
		}
		// The same folder also passes real-bench's own validation.
		if err := (Kind{}).Validate(spec); err != nil {
			t.Error(err)
		}
	})

	t.Run("digest mismatch", func(t *testing.T) {
		spec := replaySpec(t, run, other)
		err := (ReplayKind{}).Run(context.Background(), spec, stage.Env{})
		var de *DigestError
		if !errors.As(err, &de) {
			t.Fatalf("want a DigestError, got %v", err)
		}
		want, _ := schema.WorkloadDigest(other)
		for _, s := range []string{schema.ShortDigest(want), schema.ShortDigest(de.RunDigest), "record the run again"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error does not mention %q: %v", s, err)
			}
		}
		if ents, _ := os.ReadDir(spec.OutDir); len(ents) != 0 {
			t.Error("a refused replay must copy nothing")
		}
	})

	t.Run("missing files", func(t *testing.T) {
		dir := t.TempDir()
		b, _ := os.ReadFile(filepath.Join(root, run, schema.RunMetaFile))
		if err := os.WriteFile(filepath.Join(dir, schema.RunMetaFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		err := (ReplayKind{}).Run(context.Background(), replaySpec(t, dir, wl), stage.Env{})
		if err == nil || !strings.Contains(err.Error(), "has no request_metrics.csv") {
			t.Errorf("want a missing-file error, got %v", err)
		}
		if _, err := (ReplayKind{}).Fingerprint(map[string]any{"path": dir}, root); err == nil {
			t.Error("fingerprint of an incomplete folder must fail")
		}
	})

	t.Run("bad row names the recorded file", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{schema.RequestMetricsFile, schema.TokenMetricsFile, schema.RunMetaFile} {
			b := readMaybeGzipped(t, filepath.Join(root, run, f))
			if f == schema.RequestMetricsFile {
				lines := strings.SplitN(string(b), "\n", 3)
				lines[1] = strings.Replace(lines[1], ",", ",12x", 1)
				b = []byte(strings.Join(lines, "\n"))
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		spec := replaySpec(t, dir, wl)
		err := (ReplayKind{}).Run(context.Background(), spec, stage.Env{})
		want := filepath.Join(dir, schema.RequestMetricsFile) + ": row 1 (line 2)"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %q, got %v", want, err)
		}
		if ents, _ := os.ReadDir(spec.OutDir); len(ents) != 0 {
			t.Error("a refused replay must copy nothing")
		}
	})

	t.Run("bad path", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, schema.RequestMetricsFile)
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ path, want string }{
			{"testdata/real/runn", "folder testdata/real/runn (" + filepath.Join(root, "testdata/real/runn") + ") does not exist; set it to a run folder"},
			{filepath.Join(dir, "runn"), "folder " + filepath.Join(dir, "runn") + " does not exist; set it to a run folder"},
			{file, "is a file; name the run folder that holds it (" + dir + ")"},
			{dir, "has no token_metrics.csv; name a run folder"},
		} {
			_, err := (ReplayKind{}).Fingerprint(map[string]any{"path": tc.path}, root)
			var pe *stage.ParamError
			if !errors.As(err, &pe) || pe.Path != "path" || !strings.Contains(pe.Msg, tc.want) {
				t.Errorf("%s: want a with.path error containing %q, got %v", tc.path, tc.want, err)
			}
			if err != nil && strings.Contains(err.Error(), "open ") {
				t.Errorf("%s: bare open error: %v", tc.path, err)
			}
		}
	})

	t.Run("params", func(t *testing.T) {
		if err := (ReplayKind{}).CheckParams(map[string]any{}); err == nil || !strings.Contains(err.Error(), "with.path") {
			t.Errorf("missing path: %v", err)
		}
		if err := (ReplayKind{}).CheckParams(map[string]any{"path": "x", "rate": 2}); err == nil {
			t.Error("unknown param accepted")
		}
	})

	t.Run("fingerprint follows content", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{schema.RequestMetricsFile, schema.TokenMetricsFile, schema.RunMetaFile} {
			b, _ := os.ReadFile(filepath.Join(root, run, f))
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		a, err := (ReplayKind{}).Fingerprint(map[string]any{"path": dir}, root)
		if err != nil {
			t.Fatal(err)
		}
		meta := map[string]any{}
		b, _ := os.ReadFile(filepath.Join(dir, schema.RunMetaFile))
		_ = json.Unmarshal(b, &meta)
		meta["run_id"] = "edited"
		b, _ = json.Marshal(meta)
		_ = os.WriteFile(filepath.Join(dir, schema.RunMetaFile), b, 0o644)
		c, _ := (ReplayKind{}).Fingerprint(map[string]any{"path": dir}, root)
		if len(a) != 3 || equal(a, c) {
			t.Errorf("fingerprint did not change with the file: %v vs %v", a, c)
		}
	})
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestReplayNeedsNoGPU(t *testing.T) {
	if r := (ReplayKind{}).Resources(nil); len(r) != 0 {
		t.Errorf("replay holds %v", r)
	}
	if r := (Kind{}).Resources(nil); r["gpu"] != 1 {
		t.Errorf("real-bench holds %v, want one gpu", r)
	}
}

func readMaybeGzipped(t *testing.T, path string) []byte {
	t.Helper()
	r, err := schema.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A workload stage named after its family (workload-bursty) is found by
// its kind, and the runner still reads it as inputs.workload.
func TestWorkloadFoundByKind(t *testing.T) {
	tmp := t.TempDir()
	py := fakeRunner(t, tmp)
	t.Setenv("FAKE_DIR", tmp)
	t.Setenv("FAKE_RC", "0")
	wl, _ := filepath.Abs(filepath.Join(recorded, "rate-6", "workload"))
	spec := benchSpec(t, map[string]any{"python": py}, wl)
	spec.Inputs = map[string][]stage.Input{"workload-bursty": {{Instance: "workload-bursty", Kind: "workload", Dir: wl}}}
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{}); err != nil {
		t.Fatal(err)
	}
	got, err := stage.ReadSpec(filepath.Join(tmp, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	if in := got.Inputs["workload"]; len(in) != 1 || in[0].Dir != wl {
		t.Errorf("runner got inputs %v, want workload-bursty's folder as inputs.workload", got.Inputs)
	}
	two := benchSpec(t, map[string]any{"python": py}, wl)
	two.Inputs = map[string][]stage.Input{"a": {{Kind: "workload", Dir: wl}}, "b": {{Kind: "workload", Dir: wl}}}
	if err := (Kind{}).Run(context.Background(), two, stage.Env{}); err == nil || !strings.Contains(err.Error(), "several needs hold a workload") {
		t.Errorf("two workload inputs: %v", err)
	}
}
