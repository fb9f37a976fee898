package analysis

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// Metric keys. Latency metrics are in milliseconds; step metrics in their own
// units (requests, tokens, milliseconds).
const (
	TTFT = "ttft"
	TPOT = "tpot"
	ITL  = "itl"
	E2E  = "e2e"

	BatchSize    = "batch_size"
	IterTokens   = "iter_tokens"
	IterDuration = "iter_duration"
)

// MetricInfo describes a metric for tables, figures and the definitions
// section of every report.
type MetricInfo struct {
	Key        string `json:"key"`
	Name       string `json:"name"`
	Unit       string `json:"unit"`
	Definition string `json:"definition"`
}

// LatencyMetrics are compared for every run, in report order.
var LatencyMetrics = []MetricInfo{
	{TTFT, "TTFT", "ms", "time to first token = first_token_time - arrival_time, per request; includes queueing, as vLLM's bench serve measures it"},
	{TPOT, "TPOT", "ms", "time per output token = (completion_time - first_token_time) / (num_decode_tokens_actual - 1), per request; requests with one output token have none and are counted as excluded"},
	{ITL, "ITL", "ms", "inter-token latency = every gap between consecutive tokens of a request (token_latency_ns of token_index >= 1), pooled over all requests"},
	{E2E, "E2E", "ms", "end-to-end latency = completion_time - arrival_time, per request"},
}

// StepMetrics are compared when every run has step_metrics.csv.
var StepMetrics = []MetricInfo{
	{BatchSize, "Batch size", "requests", "num_requests per engine iteration (step_metrics.csv)"},
	{IterTokens, "Tokens per iteration", "tokens", "num_prefill_tokens + num_decode_tokens per engine iteration"},
	{IterDuration, "Iteration duration", "ms", "end_ns - start_ns per engine iteration"},
}

// Info returns the description of a metric key.
func Info(key string) MetricInfo {
	for _, m := range LatencyMetrics {
		if m.Key == key {
			return m
		}
	}
	for _, m := range StepMetrics {
		if m.Key == key {
			return m
		}
	}
	return MetricInfo{Key: key, Name: key}
}

// Failed is a request that did not complete; it is listed, never dropped
// silently, and left out of every latency statistic.
type Failed struct {
	RequestID    int64  `json:"request_id"`
	ErrorType    string `json:"error_type"`
	ErrorMessage string `json:"error_message"`
}

// Shape is what a request asked for; runs of one workload must agree on it.
type Shape struct {
	ID, Prefill, Decode int64
}

// Run is one run folder reduced to sorted metric samples.
type Run struct {
	Dir  string
	Meta *schema.RunMeta
	// Shapes are every request (failed ones too), sorted by id.
	Shapes []Shape
	Failed []Failed
	// TPOTExcluded counts completed requests with fewer than two output
	// tokens: TPOT is undefined for them.
	TPOTExcluded int
	// Samples maps a metric key to its ascending sample. Step metrics are
	// present only when the run has step_metrics.csv.
	Samples  map[string][]float64
	HasSteps bool
}

const nsPerMs = 1e6

// LoadRun reads a canonical run folder: run_meta.json, request_metrics.csv,
// token_metrics.csv (streamed: only ITL gaps are kept) and, when present,
// step_metrics.csv.
func LoadRun(dir string) (*Run, error) {
	meta, err := schema.ReadRunMeta(filepath.Join(dir, schema.RunMetaFile))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	reqs, err := schema.ReadRequestMetrics(filepath.Join(dir, schema.RequestMetricsFile))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	r := &Run{Dir: dir, Meta: meta, Samples: map[string][]float64{}}
	r.Shapes = make([]Shape, len(reqs))
	ttft := make([]float64, 0, len(reqs))
	e2e := make([]float64, 0, len(reqs))
	tpot := make([]float64, 0, len(reqs))
	var failedIDs []int64
	expectTokens := 0
	for i, q := range reqs {
		r.Shapes[i] = Shape{q.RequestID, q.NumPrefillTokens, q.NumDecodeTokens}
		if q.Status != schema.StatusOK {
			r.Failed = append(r.Failed, Failed{q.RequestID, q.ErrorType, q.ErrorMessage})
			failedIDs = append(failedIDs, q.RequestID)
			continue
		}
		ttft = append(ttft, float64(q.FirstTokenTimeNs-q.ArrivalTimeNs)/nsPerMs)
		e2e = append(e2e, float64(q.CompletionTimeNs-q.ArrivalTimeNs)/nsPerMs)
		if q.NumDecodeTokensActual < 2 {
			r.TPOTExcluded++
		} else {
			tpot = append(tpot, float64(q.CompletionTimeNs-q.FirstTokenTimeNs)/nsPerMs/float64(q.NumDecodeTokensActual-1))
		}
		expectTokens += int(max(q.NumDecodeTokensActual-1, 0))
	}
	sort.Slice(r.Shapes, func(i, j int) bool { return r.Shapes[i].ID < r.Shapes[j].ID })
	slices.Sort(failedIDs)

	itl := make([]float64, 0, expectTokens)
	err = schema.ScanTokenMetrics(filepath.Join(dir, schema.TokenMetricsFile), func(t schema.TokenMetric) error {
		if t.TokenIndex < 1 {
			return nil
		}
		// Failed requests are rare; a binary search only when there are any
		// keeps the hot loop free of per-row maps.
		if len(failedIDs) > 0 {
			if _, found := slices.BinarySearch(failedIDs, t.RequestID); found {
				return nil
			}
		}
		itl = append(itl, float64(t.TokenLatencyNs)/nsPerMs)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	r.Samples[TTFT] = ttft
	r.Samples[TPOT] = tpot
	r.Samples[E2E] = e2e
	r.Samples[ITL] = itl

	stepPath := filepath.Join(dir, schema.StepMetricsFile)
	if _, err := os.Stat(stepPath); err == nil {
		steps, err := schema.ReadStepMetrics(stepPath)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", dir, err)
		}
		bs := make([]float64, len(steps))
		tok := make([]float64, len(steps))
		dur := make([]float64, len(steps))
		for i, s := range steps {
			bs[i] = float64(s.NumRequests)
			tok[i] = float64(s.NumPrefillTokens + s.NumDecodeTokens)
			dur[i] = float64(s.EndNs-s.StartNs) / nsPerMs
		}
		r.Samples[BatchSize], r.Samples[IterTokens], r.Samples[IterDuration] = bs, tok, dur
		r.HasSteps = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	for _, s := range r.Samples {
		slices.Sort(s)
	}
	return r, nil
}
