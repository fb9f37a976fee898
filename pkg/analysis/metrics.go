package analysis

import (
	"fmt"
	"math"
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

// Run is one run folder reduced to metric samples.
type Run struct {
	Dir  string
	Meta *schema.RunMeta
	// Shapes are every request (failed ones too), sorted by id.
	Shapes []Shape
	Failed []Failed
	// TPOTExcluded counts completed requests with fewer than two output
	// tokens: TPOT is undefined for them.
	TPOTExcluded int
	// Samples maps a metric key to its sample (finished: exact ones are
	// sorted). Step metrics are present only when the run has step metrics.
	Samples  map[string]*Sample
	HasSteps bool
	// Timeline is every request in arrival order, for latency over time.
	Timeline []TimePoint
}

// TimePoint is one request's place in a run's timeline.
type TimePoint struct {
	ArrivalNs int64
	TTFTMs    float32 // NaN for a failed request
	TPOTMs    float32 // NaN when undefined (failed, or one output token)
}

const nsPerMs = 1e6

var nan32 = float32(math.NaN())

// LoadRun reads a canonical run folder in memory bounded by the number of
// requests and steps, whatever its token count: run_meta.json,
// request_metrics.csv and the token table are streamed (each token row is
// checked and only its gap kept, in a Sample that switches to a sketch past
// ExactLimit), then, when present, the step table.
func LoadRun(dir string) (*Run, error) {
	meta, err := schema.ReadRunMeta(filepath.Join(dir, schema.RunMetaFile))
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	r := &Run{Dir: dir, Meta: meta, Samples: map[string]*Sample{}}
	reqPath := filepath.Join(dir, schema.RequestMetricsFile)
	ttft, e2e, tpot := NewSample(), NewSample(), NewSample()
	if st, err := os.Stat(reqPath); err == nil {
		// A request row is 60-90 bytes: sizing the per-request slices up
		// front spares a million-request run their regrowth garbage.
		n := int(min(st.Size()/60+1, 1<<24))
		r.Shapes, r.Timeline = make([]Shape, 0, n), make([]TimePoint, 0, n)
		ttft.Reserve(n)
		e2e.Reserve(n)
		tpot.Reserve(n)
	}
	var failedIDs []int64
	expectTokens := 0
	err = schema.ScanRequestMetrics(reqPath, func(q schema.RequestMetric) error {
		r.Shapes = append(r.Shapes, Shape{q.RequestID, q.NumPrefillTokens, q.NumDecodeTokens})
		tp := TimePoint{ArrivalNs: q.ArrivalTimeNs, TTFTMs: nan32, TPOTMs: nan32}
		if q.Status != schema.StatusOK {
			r.Failed = append(r.Failed, Failed{q.RequestID, q.ErrorType, q.ErrorMessage})
			failedIDs = append(failedIDs, q.RequestID)
			r.Timeline = append(r.Timeline, tp)
			return nil
		}
		t := float64(q.FirstTokenTimeNs-q.ArrivalTimeNs) / nsPerMs
		ttft.Add(t)
		tp.TTFTMs = float32(t)
		e2e.Add(float64(q.CompletionTimeNs-q.ArrivalTimeNs) / nsPerMs)
		if q.NumDecodeTokensActual < 2 {
			r.TPOTExcluded++
		} else {
			v := float64(q.CompletionTimeNs-q.FirstTokenTimeNs) / nsPerMs / float64(q.NumDecodeTokensActual-1)
			tpot.Add(v)
			tp.TPOTMs = float32(v)
		}
		expectTokens += int(max(q.NumDecodeTokensActual-1, 0))
		r.Timeline = append(r.Timeline, tp)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	sort.Slice(r.Shapes, func(i, j int) bool { return r.Shapes[i].ID < r.Shapes[j].ID })
	sort.SliceStable(r.Timeline, func(i, j int) bool { return r.Timeline[i].ArrivalNs < r.Timeline[j].ArrivalNs })
	slices.Sort(failedIDs)

	itl := NewSampleFor(expectTokens)
	// The gaps go in in file order, a run of equal ones at once (every
	// token of a step after the first shares the step's gap).
	var runV float64
	var run int
	requests := 0
	if len(r.Shapes) > 0 {
		requests = int(min(r.Shapes[len(r.Shapes)-1].ID+1, 1<<26))
	}
	err = schema.ScanTokenColumns(filepath.Join(dir, schema.TokenMetricsFile), requests, func(t schema.TokenColumns) error {
		lat := t.TokenLatencyNs
		for i, idx := range t.TokenIndex {
			if idx < 1 {
				continue
			}
			// Failed requests are rare; a binary search only when there
			// are any keeps the hot loop free of per-row maps.
			if len(failedIDs) > 0 {
				if _, found := slices.BinarySearch(failedIDs, t.RequestID[i]); found {
					continue
				}
			}
			v := float64(lat[i]) / nsPerMs
			if run > 0 && v == runV {
				run++
				continue
			}
			if run > 0 {
				itl.AddRun(runV, run)
			}
			runV, run = v, 1
		}
		return nil
	})
	if run > 0 && err == nil {
		itl.AddRun(runV, run)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", dir, err)
	}
	r.Samples[TTFT] = ttft
	r.Samples[TPOT] = tpot
	r.Samples[E2E] = e2e
	r.Samples[ITL] = itl

	stepPath := filepath.Join(dir, schema.StepMetricsFile)
	if schema.Exists(stepPath) {
		n := int(schema.TableRows(stepPath))
		bs, tok, dur := NewSampleFor(n), NewSampleFor(n), NewSampleFor(n)
		err := schema.ScanStepMetrics(stepPath, func(s schema.StepMetric) error {
			bs.Add(float64(s.NumRequests))
			tok.Add(float64(s.NumPrefillTokens + s.NumDecodeTokens))
			dur.Add(float64(s.EndNs-s.StartNs) / nsPerMs)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", dir, err)
		}
		r.Samples[BatchSize], r.Samples[IterTokens], r.Samples[IterDuration] = bs, tok, dur
		r.HasSteps = true
	}
	for _, s := range r.Samples {
		s.Finish()
	}
	return r, nil
}
