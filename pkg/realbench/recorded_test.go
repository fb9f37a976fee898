package realbench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// recordedRuns lists every run folder under testdata/real: a folder holding
// run_meta.json, whose workload is the sibling folder "workload".
func recordedRuns(t *testing.T) []string {
	t.Helper()
	var runs []string
	root := filepath.Join("..", "..", "testdata", "real")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == schema.RunMetaFile {
			runs = append(runs, filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// The recorded GPU runs are what the simulators are judged against: each
// must pass the canonical schema checks, name its workload by digest, and
// hold every request completed with exactly its decode tokens.
func TestRecordedRunsAreValid(t *testing.T) {
	runs := recordedRuns(t)
	if len(runs) < 10 {
		t.Fatalf("found %d recorded runs under testdata/real, want the whole H100 sweep (>= 10)", len(runs))
	}
	for _, run := range runs {
		t.Run(filepath.ToSlash(run), func(t *testing.T) {
			if err := schema.ValidateRun(run); err != nil {
				t.Fatal(err)
			}
			if err := checkDigest(run, filepath.Join(filepath.Dir(run), "workload")); err != nil {
				t.Fatal(err)
			}
			meta, err := schema.ReadRunMeta(filepath.Join(run, schema.RunMetaFile))
			if err != nil {
				t.Fatal(err)
			}
			if meta.RunType != schema.RunReal {
				t.Errorf("run_type %q, want real", meta.RunType)
			}
			reqs, err := schema.ReadRequestMetrics(filepath.Join(run, schema.RequestMetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range reqs {
				if r.Status != schema.StatusOK || r.NumDecodeTokensActual != r.NumDecodeTokens || r.TTFTNs <= 0 {
					t.Errorf("request %d: status %s, %d/%d tokens, ttft %d", r.RequestID, r.Status,
						r.NumDecodeTokensActual, r.NumDecodeTokens, r.TTFTNs)
				}
			}
			steps, err := schema.ReadStepMetrics(filepath.Join(run, schema.StepMetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			var decoded int64
			for i, s := range steps {
				if s.EndNs < s.StartNs || (i > 0 && s.StartNs < steps[i-1].EndNs) {
					t.Fatalf("step %d: [%d, %d] overlaps or runs backwards", s.Step, s.StartNs, s.EndNs)
				}
				decoded += s.NumDecodeTokens
			}
			// Every token but each request's first comes from a decode slot.
			var want int64
			for _, r := range reqs {
				want += r.NumDecodeTokens - 1
			}
			if decoded != want {
				t.Errorf("steps decode %d tokens, requests need %d", decoded, want)
			}
		})
	}
}
