package predict

import (
	"fmt"
	"math"
	"slices"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// Mechanics is a step model built from how transformers' continuous
// batching spends a step, measured by the real bench's step_detail.csv:
//
//	step = host(batch)               scheduling, input lists, the attention
//	                                 mask per request, output handling
//	     + device(graph key)         the replayed CUDA graph: the replay
//	                                 call and the GPU time of the padded
//	                                 shape
//	  or + capture(graph key)        instead, when the key was never seen in
//	                                 this engine process: an eager forward
//	                                 (the graph's kernels, run once) and the
//	                                 capture; the graph is not replayed in
//	                                 that step
//
// Each part is fitted on the part of the step it explains (the device law
// on the compute phase of replayed steps, the host law on the rest, the
// capture law on the steps that captured), so host costs that grow with
// requests and tokens are not confused with GPU costs that grow with
// padded shapes, and a simulation captures exactly where the engine would:
// it keeps the set of keys captured so far, starting from the engine's own
// warm-up.
type Mechanics struct {
	Graphs  GraphConfig `json:"graphs"`
	Host    Law         `json:"host"`
	Device  Law         `json:"device"`
	Capture Law         `json:"capture"`
	// Wave is the attention kernel's wave width in padded query tokens
	// (FeatWaveKV): chosen on the training steps. 0: the training steps
	// showed no wave boundary, and the law extrapolates none.
	Wave int64 `json:"attention_wave_tokens,omitempty"`
	// CaptureRatio are the quantiles (0, 5, ..., 100%) of a capture's
	// measured excess over the capture law (its part other than the eager
	// forward's device time); a simulation draws each capture's ratio from
	// them (seeded).
	CaptureRatio []float64 `json:"capture_ratio,omitempty"`
	// Stalls are replayed steps that took more than 1.5× host + device.
	Stalls *Stalls `json:"stalls,omitempty"`
	// Fit evidence: steps and captures fitted on, and each law's
	// |relative error| on them.
	Steps        int           `json:"steps"`
	Captures     int           `json:"captures"`
	HostError    ResidualStats `json:"host_error"`
	DeviceError  ResidualStats `json:"device_error"`
	CaptureError ResidualStats `json:"capture_error"`
	// WarmKeys are the graphs cached when the training runs' replay
	// started (recorded by the bench); a simulation recomputes its own by
	// replaying the bench's warm-up on its workload.
	WarmKeys []GraphKey `json:"warm_keys_observed,omitempty"`
}

// MechanicsVersion is the schema version of a step model with the current
// mechanics form. Version 3 models (device law on padded KV and a padded
// query × KV mask, capture law without the eager forward's device time,
// host law with a per-prefill-request cost) are still read and simulated
// as they were fitted: every law names its own features.
const MechanicsVersion = 4

// Mechanics-law features. Host features describe the batch, device and
// capture features its graph key.
const (
	FeatKVReadTokens = "kv_read_tokens" // cached tokens the batch reads (context - query)
	// FeatKVTotal is the padded KV read plus the padded query: the keys
	// and values the graph gathers from the cache and attends over
	// (input_outputs.py get_model_kwargs: kv_size = max_kv_read +
	// num_q_tokens, the read index and the mask's width).
	FeatKVTotal = "padded_kv_total"
	// FeatWaveKV is ceil(padded query / Wave) × FeatKVTotal. paged|sdpa
	// attends with a dense mask, so the kernel tiles the padded query and
	// every tile reads every key: its time steps up with each full wave of
	// query tiles over the GPU, not smoothly with query × KV. On the H200
	// the replayed steps' device time is flat in the padded query up to
	// 1024 tokens and ~1.7x the per-KV-token cost just above (the H100
	// recordings show the same step), and the GPU profile's attention at
	// 1024, 2048 and 4096 query tokens lies on one line in the number of
	// 1024-token waves.
	FeatWaveKV = "attention_waves_kv"
	// FeatDeviceTime is the device law's time for the step's key: a
	// capture first runs the graph's kernels eagerly, so its cost is that
	// plus the capture's own overhead (coefficient 1, not fitted).
	FeatDeviceTime = "device_time"
	// FeatFreshShape is 1 when a capture's padded (query, KV) tensor shape
	// is new to the engine process (no graph of that shape, whatever its
	// KV-length key, was captured or warmed before), else 0. On the
	// recorded H200 training runs a capture's overhead beyond its eager
	// forward was 47-51 ms (run medians) for a shape the process had run
	// before and 95-118 ms for a fresh one, whatever the query size.
	FeatFreshShape = "fresh_shape"

	// Version-3 features, still read: padded query × (padded KV + padded
	// query), and the fresh-shape capture's cost per padded token.
	FeatPaddedMask = "padded_mask"
	FeatFreshQuery = "fresh_padded_query_tokens"
	FeatFreshKV    = "fresh_padded_kv_tokens"
)

// HostFeatures, DeviceFeatures and CaptureFeatures are the laws' forms.
var (
	HostFeatures    = []string{FeatIntercept, FeatRequests, FeatQueryTokens, FeatKVReadTokens}
	DeviceFeatures  = []string{FeatIntercept, FeatPaddedQueryTokens, FeatKVTotal, FeatWaveKV}
	CaptureFeatures = []string{FeatDeviceTime, FeatIntercept, FeatFreshShape}
	// mechFeatures are every feature a mechanics law may name, version 3's
	// included.
	mechFeatures = []string{FeatIntercept, FeatRequests, FeatQueryTokens, FeatKVReadTokens, FeatPrefillRequests,
		FeatPaddedQueryTokens, FeatPaddedKVTokens, FeatPaddedMask, FeatKVTotal, FeatWaveKV, FeatDeviceTime,
		FeatFreshShape, FeatFreshQuery, FeatFreshKV}
)

// Law is a linear law over named features, in ns.
type Law struct {
	Features []string  `json:"features"`
	Coef     []float64 `json:"coefficients_ns"`
}

// mechX is what a mechanics feature reads: the step's batch shape, its
// graph key, the attention wave width, and for a capture whether its
// tensor shape is fresh and the device law's time for its key.
type mechX struct {
	sh    sched.Shape
	k     GraphKey
	wave  int64
	fresh bool
	dev   float64
}

// waves is how many waves of query tiles the attention kernel runs.
func waves(q, wave int64) float64 {
	if wave <= 0 || q <= 0 {
		return 1
	}
	return float64((q + wave - 1) / wave)
}

// mechValue is a mechanics feature of a step.
func mechValue(name string, x mechX) float64 {
	sh, k := x.sh, x.k
	q := sh.PrefillTokens + sh.DecodeTokens
	fresh := 0.0
	if x.fresh {
		fresh = 1
	}
	switch name {
	case FeatFreshShape:
		return fresh
	case FeatFreshQuery:
		return fresh * float64(k.Q)
	case FeatFreshKV:
		return fresh * float64(k.KV)
	case FeatIntercept:
		return 1
	case FeatRequests:
		return float64(sh.Requests)
	case FeatPrefillRequests:
		return float64(sh.PrefillRequests)
	case FeatQueryTokens:
		return float64(q)
	case FeatKVReadTokens:
		return float64(sh.ContextTokens - q)
	case FeatPaddedQueryTokens:
		return float64(k.Q)
	case FeatPaddedKVTokens:
		return float64(k.KV)
	case FeatPaddedMask:
		return float64(k.Q) * float64(k.KV+k.Q)
	case FeatKVTotal:
		return float64(k.KV + k.Q)
	case FeatWaveKV:
		return waves(k.Q, x.wave) * float64(k.KV+k.Q)
	case FeatDeviceTime:
		return x.dev
	}
	panic("predict: unknown mechanics feature " + name)
}

func (l Law) at(x mechX) float64 {
	var t float64
	for i, f := range l.Features {
		t += l.Coef[i] * mechValue(f, x)
	}
	return t
}

// coef is the law's coefficient of f (0 when it does not name it).
func (l Law) coef(f string) float64 {
	for i, g := range l.Features {
		if g == f {
			return l.Coef[i]
		}
	}
	return 0
}

func (l Law) check(what string) error {
	if len(l.Features) == 0 || len(l.Features) != len(l.Coef) {
		return fmt.Errorf("mechanics %s law: features and coefficients_ns must be non-empty and of equal length", what)
	}
	for _, f := range l.Features {
		if !slices.Contains(mechFeatures, f) {
			return fmt.Errorf("mechanics %s law: unknown feature %q", what, f)
		}
	}
	return nil
}

// capture is the capture law's time for x (x.dev set by it) split into the
// eager forward's device time and the capture's own overhead, which is
// what a drawn ratio scales.
func (mc *Mechanics) capture(x mechX) (forward, overhead float64) {
	x.dev = mc.Device.at(x)
	forward = mc.Capture.coef(FeatDeviceTime) * x.dev
	return forward, mc.Capture.at(x) - forward
}

// mechStep is the mechanics model's time for one step of a simulation:
// it consults and updates the simulated engine's graph cache.
func (m *StepModel) mechStep(sh sched.Shape) int64 {
	mc := m.Mechanics
	if m.graphs == nil {
		m.graphs = newGraphCache(mc.Graphs.Capacity)
		m.graphs.use(mc.Graphs.WarmupKey())
	}
	x := mechX{sh: sh, k: mc.Graphs.Key(sh), wave: mc.Wave}
	t := mc.Host.at(x)
	x.fresh = !m.graphs.seenShape(x.k)
	if m.graphs.use(x.k) {
		t += mc.Device.at(x)
		if !m.warming && mc.Stalls != nil && mc.Stalls.Fraction > 0 && len(mc.Stalls.ExcessNs) > 0 {
			if m.rng == nil {
				m.SetSeed(0)
			}
			if m.rng.Float64() < mc.Stalls.Fraction {
				t += float64(m.draw(mc.Stalls.ExcessNs))
			}
		}
	} else if !m.warming {
		forward, c := mc.capture(x)
		if len(mc.CaptureRatio) > 1 {
			c *= m.drawFloat(mc.CaptureRatio)
		}
		t += math.Max(forward+c, 0)
	}
	return max(int64(math.Round(t)), m.MinStepNs)
}

// predictMech is the mechanics model's time for a recorded step, capture
// included when the step captured (hit 0) and the key from the recording
// when it has one.
func (m *StepModel) predictMech(s Step) int64 {
	host, gpu := m.MechanicsParts(s)
	return max(int64(math.Round(host+gpu)), m.MinStepNs)
}

// MechanicsParts splits the mechanics model's time for a recorded step into
// the host law and the GPU part: the capture law when the step captured
// (hit 0), else the device law; for comparing a recorded step log with the
// model part by part. Both are 0 for a model without the mechanics form.
func (m *StepModel) MechanicsParts(s Step) (hostNs, gpuNs float64) {
	mc := m.Mechanics
	if mc == nil {
		return 0, 0
	}
	x := mechX{sh: s.shape(), k: mc.Graphs.Key(s.shape()), wave: mc.Wave}
	if s.Detail != nil && s.Detail.Key != (GraphKey{}) {
		x.k = s.Detail.Key
	}
	if s.Detail != nil && s.Detail.Hit == 0 {
		x.fresh = s.Detail.FreshShape
		forward, c := mc.capture(x)
		return mc.Host.at(x), math.Max(forward+c, 0)
	}
	return mc.Host.at(x), mc.Device.at(x)
}

// WarmUp runs fn, a simulation of the real bench's warm-up (the requests it
// sends before the measured replay), with this model as its predictor: the
// graphs those steps would capture are cached, and nothing is drawn, so
// the measured simulation starts from the engine's warm state with its
// random stream untouched. A model without mechanics just runs fn.
func (m *StepModel) WarmUp(fn func() error) error {
	m.warming = true
	defer func() { m.warming = false }()
	return fn()
}

// CachedGraphs lists the graphs the simulated engine holds (for run_meta).
func (m *StepModel) CachedGraphs() []string {
	if m.graphs == nil {
		return nil
	}
	out := make([]string, 0, len(m.graphs.keys))
	for k := range m.graphs.keys {
		out = append(out, k.String())
	}
	return out
}
