package vidur

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/workload"
)

// recordedDir holds real Vidur runs made on this project's CPU machines
// (see each folder's README.md).
const recordedDir = "../../testdata/vidur"

// workloadParams returns the workload stage's `with:` of an experiment file:
// the recipe of the trace the run replayed.
func workloadParams(t *testing.T, expFile string) workload.Params {
	t.Helper()
	b, err := os.ReadFile(expFile)
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Stages map[string]struct {
			Uses string         `yaml:"uses"`
			With map[string]any `yaml:"with"`
		} `yaml:"stages"`
	}
	if err := yaml.Unmarshal(b, &exp); err != nil {
		t.Fatalf("%s: %v", expFile, err)
	}
	for _, st := range exp.Stages {
		if st.Uses == "workload" {
			p, err := workload.DecodeParams(st.With)
			if err != nil {
				t.Fatalf("%s: %v", expFile, err)
			}
			return p
		}
	}
	t.Fatalf("%s has no workload stage", expFile)
	return workload.Params{}
}

func generateDigest(t *testing.T, expFile string) (string, *schema.Workload) {
	t.Helper()
	w, err := workload.Generate(workloadParams(t, expFile), filepath.Dir(expFile))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := schema.WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	d, err := schema.WorkloadDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d, w
}

// TestRecordedRuns re-converts each recorded run's raw Vidur output and
// checks it against the recorded canonical files, and checks that the
// experiment's workload params still generate the workload that was run.
func TestRecordedRuns(t *testing.T) {
	runs, _ := filepath.Glob(filepath.Join(recordedDir, "*", "raw", RawResultFile))
	if len(runs) == 0 {
		t.Skip("no recorded Vidur run under testdata/vidur yet")
	}
	for _, res := range runs {
		dir := filepath.Dir(filepath.Dir(res))
		t.Run(filepath.Base(dir), func(t *testing.T) {
			workDir := filepath.Join(dir, "workload")
			w, err := schema.ReadWorkload(workDir)
			if err != nil {
				t.Fatal(err)
			}
			recorded, err := schema.WorkloadDigest(workDir)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := generateDigest(t, filepath.Join(dir, "experiment.yaml")); d != recorded {
				t.Fatalf("experiment.yaml's workload params generate workload %s, the run replayed %s", d, recorded)
			}
			meta, err := schema.ReadRunMeta(filepath.Join(dir, schema.RunMetaFile))
			if err != nil {
				t.Fatal(err)
			}
			if meta.WorkloadDigest != recorded || meta.RunType != schema.RunVidur {
				t.Fatalf("run_meta.json: %s run of workload %s, want vidur of %s", meta.RunType, meta.WorkloadDigest, recorded)
			}
			// The trace Vidur read is the workload's.
			var trace bytes.Buffer
			if err := WriteTrace(&trace, w.Requests); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(dir, RawDir, RawTraceFile)); !bytes.Equal(got, trace.Bytes()) {
				t.Fatal("raw/trace.csv is not WriteTrace of the workload")
			}
			conv, err := ConvertOutput(filepath.Join(dir, RawDir), w.Requests)
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if err := conv.WriteRun(out, meta); err != nil {
				t.Fatal(err)
			}
			if _, err := schema.ReadRun(out); err != nil {
				t.Fatal(err)
			}
			// token_metrics.csv (1 MB) is not recorded: it is rebuilt from
			// raw/chrome_trace.json.gz above and checked by ReadRun.
			for _, f := range []string{schema.RequestMetricsFile, schema.StepMetricsFile} {
				got := readFile(t, filepath.Join(out, f))
				if want := readFile(t, filepath.Join(dir, f)); !bytes.Equal(got, want) {
					t.Fatalf("re-converting raw/ does not give the recorded %s", f)
				}
			}
			args := string(readFile(t, filepath.Join(dir, RawDir, RawArgsFile)))
			for _, f := range []string{"--replica_scheduler_config_type", "--hf-config"} {
				if !strings.Contains(args, f) {
					t.Errorf("raw/%s lacks %s", RawArgsFile, f)
				}
			}
		})
	}
}

// TestBenchTraceRecipe pins the 10,000-request benchmark trace: its params
// must keep generating the workload whose digest is recorded.
func TestBenchTraceRecipe(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 10,000 requests")
	}
	dir := filepath.Join(recordedDir, "bench-10k")
	d, w := generateDigest(t, filepath.Join(dir, "experiment.yaml"))
	p := filepath.Join(dir, "workload_digest.txt")
	if *update {
		if err := os.WriteFile(p, []byte(d+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.TrimSpace(string(readFile(t, p)))
	if d != want || len(w.Requests) != 10000 {
		t.Fatalf("bench-10k params generate %d requests, digest %s; recorded %s", len(w.Requests), d, want)
	}
}
