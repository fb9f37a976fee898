package workload

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gsim-dev/gsim/pkg/schema"
)

var update = flag.Bool("update", false, "rewrite the golden workload folders under testdata/golden")

// goldenCases cover every arrival process and length distribution at least
// once, with small sizes so the goldens stay readable.
var goldenCases = []struct{ name, yaml string }{
	{"poisson-uniform-fixed", `
model: Qwen/Qwen3-0.6B
seed: 42
num_requests: 20
arrival: {process: poisson, rate: 4}
prefill: {dist: uniform, min: 16, max: 512}
decode: {dist: fixed, value: 32}
`},
	{"gamma-lognormal-normal-prompts", `
model: Qwen/Qwen3-0.6B
seed: 7
num_requests: 12
arrival: {process: gamma, rate: 2.5, burstiness: 0.5}
prefill: {dist: lognormal, mean: 12, std: 6, min: 2, max: 40}
decode: {dist: normal, mean: 30, std: 20, min: 1, max: 64}
max_total_tokens: 60
prompts: synthetic
`},
	{"constant-duration-zipf-empirical", `
model: Qwen/Qwen3-0.6B
seed: 1
duration: 5s
arrival: {process: constant, rate: 3}
prefill: {dist: zipf, s: 1.1, min: 8, max: 4096}
decode: {dist: empirical, path: testdata/lengths.jsonl}
`},
	{"trace-joint-empirical", `
model: Qwen/Qwen3-0.6B
seed: 3
arrival: {process: trace, path: testdata/vidur_trace.csv}
prefill: {dist: empirical, path: testdata/vidur_trace.csv}
decode: {dist: empirical, path: testdata/vidur_trace.csv}
`},
	{"all-at-once-lognormal-mu", `
model: Qwen/Qwen3-0.6B
seed: 9
num_requests: 8
arrival: {process: all-at-once}
prefill: {dist: lognormal, mu: 5, sigma: 0.5}
decode: {dist: uniform, min: 1, max: 4}
`},
}

func paramsFromYAML(t testing.TB, src string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(src), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func generateDir(t testing.TB, src string) string {
	t.Helper()
	p, err := DecodeParams(paramsFromYAML(t, src))
	if err != nil {
		t.Fatal(err)
	}
	w, err := Generate(p, ".")
	if err != nil {
		t.Fatal(err)
	}
	w.Meta.CreatedAt = "2026-01-01T00:00:00Z"
	dir := t.TempDir()
	if err := schema.WriteWorkload(dir, w); err != nil {
		t.Fatal(err)
	}
	if err := schema.ValidateWorkloadDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			dir := generateDir(t, c.yaml)
			golden := filepath.Join("testdata", "golden", c.name)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				os.RemoveAll(golden)
				if err := os.MkdirAll(golden, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range entries {
				got, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				gp := filepath.Join(golden, e.Name())
				if *update {
					if err := os.WriteFile(gp, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(gp)
				if err != nil {
					t.Fatalf("%v (run go test ./pkg/workload -run TestGolden -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from %s; if the change is intended, bump Kind.Version and run with -update", e.Name(), gp)
				}
			}
			if g, _ := os.ReadDir(golden); len(g) != len(entries) {
				t.Errorf("golden has %d files, generator wrote %d", len(g), len(entries))
			}
		})
	}
}
