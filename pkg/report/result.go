package report

import (
	"github.com/gsim-dev/gsim/pkg/analysis"
)

// CompareFile is the machine-readable output of a compare stage; the sweep
// report reads it instead of the markdown.
const CompareFile = "compare.json"

// ResultVersion is compare.json's schema_version.
// Version 2 added reruns, the noise band and verdicts.
const ResultVersion = 2

// Result is compare.json.
type Result struct {
	SchemaVersion int    `json:"schema_version"`
	Title         string `json:"title"`
	// Instance and Key identify the compare stage instance that wrote it.
	Instance string         `json:"instance,omitempty"`
	Key      string         `json:"key,omitempty"`
	Matrix   map[string]any `json:"matrix,omitempty"`
	// Reference is the need name of the reference run; Runs[0] is it.
	Reference      string                `json:"reference"`
	Workload       *WorkloadInfo         `json:"workload,omitempty"`
	WorkloadDigest string                `json:"workload_digest"`
	QuantileMethod string                `json:"quantile_method"`
	Definitions    []analysis.MetricInfo `json:"definitions"`
	// HasSteps is true when every run has step_metrics.csv and the batch
	// metrics are compared.
	HasSteps   bool        `json:"has_steps"`
	Runs       []RunResult `json:"runs"`
	Candidates []Candidate `json:"candidates"`
	// Reruns are the reference's reruns (repeats of the reference stage,
	// or the needs listed in with.reruns); Noise is their spread, nil
	// without reruns.
	Reruns []RunResult `json:"reruns,omitempty"`
	Noise  *Noise      `json:"noise,omitempty"`
	// Verdict is one line saying, per candidate, whether it can be told
	// apart from a rerun of the real engine.
	Verdict string `json:"verdict"`
}

// WorkloadInfo describes the workload folder the runs were checked against.
type WorkloadInfo struct {
	ID    string `json:"id"`
	Model string `json:"model"`
	// Dir is where the workload was read; not written, so a comparison is
	// the same file in every store.
	Dir         string `json:"-"`
	Key         string `json:"key,omitempty"`
	NumRequests int    `json:"num_requests"`
}

// RunResult is one run's provenance and statistics.
type RunResult struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	// Dir is where the run was read; not written (stage key and instance
	// say which run it was, in any store).
	Dir       string         `json:"-"`
	Key       string         `json:"key,omitempty"`
	Instance  string         `json:"instance,omitempty"`
	RunID     string         `json:"run_id"`
	RunType   string         `json:"run_type"`
	Model     string         `json:"model"`
	Hardware  map[string]any `json:"hardware,omitempty"`
	Engine    map[string]any `json:"engine,omitempty"`
	Extra     map[string]any `json:"extra,omitempty"`
	StartedAt string         `json:"started_at,omitempty"`
	EndedAt   string         `json:"ended_at,omitempty"`

	NumRequests  int               `json:"num_requests"`
	NumFailed    int               `json:"num_failed"`
	TPOTExcluded int               `json:"tpot_excluded"`
	Failed       []analysis.Failed `json:"failed"`
	// Stats maps a metric key to its summary (latencies in ms).
	Stats map[string]analysis.Summary `json:"stats"`
	// Quantiles maps TTFT and TPOT to their 0, 1, ..., 100th percentiles
	// (ms): enough to redraw the CDF in the sweep report.
	Quantiles map[string][]analysis.Num `json:"quantiles,omitempty"`
}

// Candidate is one candidate run measured against the reference.
type Candidate struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	// RelErrors maps metric → stat → (cand-ref)/ref.
	RelErrors map[string]map[string]analysis.Num `json:"rel_errors"`
	// Distances maps metric → KS and W1 (W1 in the metric's unit).
	Distances map[string]analysis.Distance `json:"distances"`
	// Noise and Verdict place the candidate against the rerun band; nil
	// without reruns.
	Noise   *CandidateNoise `json:"noise,omitempty"`
	Verdict *Verdict        `json:"verdict,omitempty"`
}

// Run returns the run result named name.
func (r *Result) Run(name string) *RunResult {
	for i := range r.Runs {
		if r.Runs[i].Name == name {
			return &r.Runs[i]
		}
	}
	return nil
}

// metrics lists the metric keys this result compares, in report order.
func (r *Result) metrics() []analysis.MetricInfo {
	out := append([]analysis.MetricInfo{}, analysis.LatencyMetrics...)
	if r.HasSteps {
		out = append(out, analysis.StepMetrics...)
	}
	return out
}

// gpuName digs the GPU's name out of run_meta hardware, whose shape differs
// between engines (real bench: gpu_name; Vidur: device; the embedded
// simulator: name), and marks simulated hardware as such.
func gpuName(h map[string]any) string {
	name := findName(h)
	if sim, _ := h["simulated"].(bool); sim || h["simulated_by"] != nil {
		if name == "" {
			return "(simulated)"
		}
		return name + " (simulated)"
	}
	return name
}

func findName(h map[string]any) string {
	for _, k := range []string{"gpu_name", "gpu", "device_name", "device", "name"} {
		switch t := h[k].(type) {
		case string:
			if t != "" {
				return t
			}
		case map[string]any:
			if s := findName(t); s != "" {
				return s
			}
		}
	}
	if gs, ok := h["gpus"].([]any); ok && len(gs) > 0 {
		if m, ok := gs[0].(map[string]any); ok {
			return findName(m)
		}
	}
	return ""
}
