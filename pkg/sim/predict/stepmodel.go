package predict

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// Step-model features. The intercept is the engine's fixed CPU cost of a
// step (Python, kernel launches, synchronisation: a batch-of-one forward of
// Qwen3-0.6B on the transformers engine is ~27 ms of wall time for ~7 ms of
// kernels); requests is the per-request CPU cost of building inputs and
// handling outputs; the token terms are the GPU's share.
const (
	FeatIntercept       = "intercept"
	FeatPrefillTokens   = "prefill_tokens"
	FeatDecodeTokens    = "decode_tokens"
	FeatContextTokens   = "context_tokens"
	FeatRequests        = "requests"
	FeatPrefillRequests = "prefill_requests"
	FeatPrefillTokensSq = "prefill_tokens_sq"
	FeatTotalTokensSq   = "total_tokens_sq"
	// The padded features follow an engine that runs CUDA graphs captured
	// per padded shape: query tokens are padded to a multiple of q_padding
	// and KV tokens (cached + new) to a multiple of kv_padding, and
	// transformers' paged|sdpa attention builds a dense [query, KV] mask, so
	// its cost follows padded query × padded KV.
	FeatQueryTokens       = "query_tokens"
	FeatPaddedQueryTokens = "padded_query_tokens"
	FeatPaddedKVTokens    = "padded_kv_tokens"
	FeatPaddedAttention   = "padded_attention"
	FeatAttention         = "attention" // query tokens × KV tokens, unpadded
	// FeatAttentionWaves is ceil(padded query / wave) × padded KV: the
	// attention kernel tiles the padded query and each tile reads every
	// key, so its time steps up with each full wave of tiles over the GPU
	// rather than growing smoothly with query × KV (see FeatWaveKV). The
	// wave width is chosen on the training steps.
	FeatAttentionWaves = "attention_waves"
)

// AllFeatures lists the features a model may use.
var AllFeatures = []string{FeatIntercept, FeatPrefillTokens, FeatDecodeTokens, FeatContextTokens,
	FeatRequests, FeatPrefillRequests, FeatPrefillTokensSq, FeatTotalTokensSq,
	FeatQueryTokens, FeatPaddedQueryTokens, FeatPaddedKVTokens, FeatPaddedAttention, FeatAttention, FeatAttentionWaves}

// DefaultFeatures is the form used when none is asked for: the per-step
// and per-request CPU costs, and the padded shapes transformers' paged|sdpa
// attention and CUDA graphs make the GPU time follow. Without padding they
// are query tokens, KV tokens and their product. WaveFeatures replaces the
// product by the attention kernel's waves.
var DefaultFeatures = []string{FeatIntercept, FeatPaddedQueryTokens, FeatPaddedKVTokens, FeatPaddedAttention,
	FeatRequests}

// WaveFeatures is the default form with the attention in waves of query
// tiles (FeatAttentionWaves) instead of padded query × padded KV.
var WaveFeatures = []string{FeatIntercept, FeatPaddedQueryTokens, FeatPaddedKVTokens, FeatAttentionWaves,
	FeatRequests}

// Step is one iteration as step_metrics.csv records it.
type Step struct {
	StartNs, EndNs                  int64
	PrefillTokens, DecodeTokens     int64
	Requests                        int64
	PrefillRequests, DecodeRequests int64
	ContextTokens                   int64
	// Detail is what the real bench's step_detail.csv adds; nil without it.
	Detail *StepDetail
}

// StepDetail is one step's breakdown as the real bench records it.
type StepDetail struct {
	// Key is the CUDA graph the step ran; Hit is 1 when it was replayed,
	// 0 when the step captured it.
	Key GraphKey
	Hit int8
	// DeviceNs is the wait for the device's work after the launch
	// (compute_end_ns to sync_end_ns).
	DeviceNs int64
	// ComputeNs is the compute phase, from the replay call to the end of
	// that wait (compute_start_ns to sync_end_ns); 0 when not recorded.
	// For a replayed graph it is what the device law explains: the first
	// replay of a graph returns ~2.5 ms later (the graph is uploaded) and
	// its wait is as much shorter, so the wait alone would split one cost
	// in two.
	ComputeNs int64
	// MaxContextTokens is the longest request's KV length (before padding).
	MaxContextTokens int64
	// FreshShape is set on a capture whose padded (query, KV) shape no
	// graph of the run had before (see FeatFreshShape).
	FreshShape bool
}

// Padding is the engine's shape padding; zero means none.
type Padding struct {
	Query int64 `json:"q_padding,omitempty"`
	KV    int64 `json:"kv_padding,omitempty"`
	// Wave is the attention kernel's wave width in padded query tokens
	// (FeatAttentionWaves), chosen by the fit; 0: one wave whatever the
	// query.
	Wave int64 `json:"attention_wave_tokens,omitempty"`
}

// key is the padded (query, KV) shape a CUDA graph is captured for.
func (pd Padding) key(s sched.Shape) [2]int64 {
	return [2]int64{padUp(s.PrefillTokens+s.DecodeTokens, pd.Query), padUp(s.ContextTokens, pd.KV)}
}

func padUp(x, to int64) int64 {
	if to <= 0 {
		return x
	}
	return (x + to - 1) / to * to
}

func (pd Padding) featureValue(name string, s sched.Shape) float64 {
	q := s.PrefillTokens + s.DecodeTokens
	switch name {
	case FeatQueryTokens:
		return float64(q)
	case FeatPaddedQueryTokens:
		return float64(padUp(q, pd.Query))
	case FeatPaddedKVTokens:
		return float64(padUp(s.ContextTokens, pd.KV))
	case FeatPaddedAttention:
		return float64(padUp(q, pd.Query)) * float64(padUp(s.ContextTokens, pd.KV))
	case FeatAttention:
		return float64(q) * float64(s.ContextTokens)
	case FeatAttentionWaves:
		if pd.Query <= 0 && pd.Wave <= 0 {
			return float64(q) * float64(s.ContextTokens)
		}
		return waves(padUp(q, pd.Query), pd.Wave) * float64(padUp(s.ContextTokens, pd.KV))
	}
	return featureValue(name, s)
}

func featureValue(name string, s sched.Shape) float64 {
	switch name {
	case FeatIntercept:
		return 1
	case FeatPrefillTokens:
		return float64(s.PrefillTokens)
	case FeatDecodeTokens:
		return float64(s.DecodeTokens)
	case FeatContextTokens:
		return float64(s.ContextTokens)
	case FeatRequests:
		return float64(s.Requests)
	case FeatPrefillRequests:
		return float64(s.PrefillRequests)
	case FeatPrefillTokensSq:
		// step_metrics only has the sum of prefill tokens, so the square of
		// the sum (not the sum of squares) is what can be fitted.
		return float64(s.PrefillTokens) * float64(s.PrefillTokens)
	case FeatTotalTokensSq:
		t := float64(s.PrefillTokens + s.DecodeTokens)
		return t * t
	}
	panic("predict: unknown feature " + name)
}

func (s Step) shape() sched.Shape {
	sh := sched.Shape{Requests: s.Requests, PrefillRequests: s.PrefillRequests, DecodeRequests: s.DecodeRequests,
		PrefillTokens: s.PrefillTokens, DecodeTokens: s.DecodeTokens, ContextTokens: s.ContextTokens}
	if s.Detail != nil {
		sh.MaxContextTokens = s.Detail.MaxContextTokens
	}
	return sh
}

// StepModel is a fitted linear model of iteration wall time, persisted as
// step_model.json.
type StepModel struct {
	SchemaVersion int       `json:"schema_version"`
	Features      []string  `json:"features"`
	Coef          []float64 `json:"coefficients_ns"`
	// GapNs is the median time from one step's end to the next step's start
	// over back-to-back steps.
	InterStepGapNs int64          `json:"gap_ns"`
	R2             float64        `json:"r2"`
	Residual       ResidualStats  `json:"residual"`
	NumSteps       int            `json:"num_steps"`
	Training       []TrainingCell `json:"training_cells"`
	// MinStepNs floors predictions: a linear model can go below any step
	// the engine ever took for shapes outside the training range.
	MinStepNs int64 `json:"min_step_ns"`
	// Dropped lists features that were zero on every training step.
	Dropped []string `json:"dropped_features,omitempty"`
	// Clamped lists features whose cost came out negative and were held at
	// zero (see solveNonNeg).
	Clamped []string `json:"clamped_features,omitempty"`
	Padding Padding  `json:"padding"`
	// CaptureNs is added to the first iteration of each padded shape not in
	// WarmShapes (a CUDA graph capture); Captures counts the training steps
	// it was measured on.
	CaptureNs  int64      `json:"capture_ns,omitempty"`
	Captures   int        `json:"captures,omitempty"`
	WarmShapes [][2]int64 `json:"warm_shapes,omitempty"`
	// CaptureExcessNs are the quantiles (0, 5, ..., 100%) of the capture
	// cost; a simulation draws each capture from them (seeded), so the
	// spread of capture times, not only their median, reaches the tails.
	CaptureExcessNs []int64 `json:"capture_excess_ns,omitempty"`
	// CaptureRunNs are the quantiles (0, 5, ..., 100%) of the median
	// capture of each training run, CaptureRatio those of a capture's
	// ratio to its run's median. A simulation draws one run level (seeded)
	// and every capture as that level times a drawn ratio, so a run has
	// cheap or dear captures throughout, as real runs do; the dear ones
	// tip a run near saturation into a backlog the cheap ones do not.
	// Without them (fewer than two runs with enough captures, or a model
	// written before them) captures are drawn from CaptureExcessNs.
	CaptureRunNs []int64   `json:"capture_run_ns,omitempty"`
	CaptureRatio []float64 `json:"capture_ratio,omitempty"`

	// StallFraction of steps took more than 1.5× the law; StallExcessNs
	// are the quantiles (0, 5, ..., 100%) of their excess. A simulation
	// adds such a stall to a step with that probability, drawing from a
	// generator seeded by SetSeed, so runs stay reproducible.
	StallFraction float64 `json:"stall_fraction,omitempty"`
	StallExcessNs []int64 `json:"stall_excess_ns,omitempty"`
	// PrefillStalls and DecodeStalls split the stalls by the kind of step:
	// on the recorded H100 runs 8–28% of steps with prefill tokens were
	// slow (mostly CUDA graphs captured for the longest request's KV
	// length, a key component step_metrics.csv does not record) against
	// 0.1–2% of decode-only steps. Drawing one rate for every step puts
	// too many stalls on the long decode stretches of light load and too
	// few on the prefill-heavy steps of heavy load. When both are nil (a
	// model written before the split), StallFraction applies to every step.
	PrefillStalls *Stalls `json:"prefill_stalls,omitempty"`
	DecodeStalls  *Stalls `json:"decode_stalls,omitempty"`

	// Engine is the real engine's settings as its run_meta.json recorded
	// them (from the first training run), so a simulation can mirror them.
	Engine map[string]any `json:"engine,omitempty"`

	// Mechanics, when set, replaces the single law and the capture and
	// stall draws above with the host, device and capture laws and an
	// exact model of the engine's graph cache (schema version 3).
	Mechanics *Mechanics `json:"mechanics,omitempty"`

	graphs       *graphCache       // the mechanics model's simulated graph cache
	warming      bool              // inside WarmUp: cache graphs, draw nothing
	seen         map[[2]int64]bool // shapes captured so far in this simulation
	captureLevel int64             // this simulation's drawn capture level
	rng          *rand.Rand
}

// SetSeed seeds the stall draws of a simulation.
func (m *StepModel) SetSeed(seed uint64) { m.rng = rand.New(rand.NewPCG(seed, 0x57a11)) }

// Stalls is the slow-step model of one kind of step: the share of steps
// that took more than 1.5× the law and the quantiles (0, 5, ..., 100%) of
// their excess.
type Stalls struct {
	Fraction float64 `json:"fraction"`
	ExcessNs []int64 `json:"excess_ns,omitempty"`
	Steps    int     `json:"steps"`
}

// stall draws an occasional host stall for a step of this shape.
func (m *StepModel) stall(sh sched.Shape) int64 {
	frac, q := m.StallFraction, m.StallExcessNs
	if m.PrefillStalls != nil || m.DecodeStalls != nil {
		st := m.DecodeStalls
		if sh.PrefillTokens > 0 {
			st = m.PrefillStalls
		}
		if st == nil {
			return 0
		}
		frac, q = st.Fraction, st.ExcessNs
	}
	if frac <= 0 || len(q) == 0 {
		return 0
	}
	if m.rng == nil {
		m.SetSeed(0)
	}
	if m.rng.Float64() >= frac {
		return 0
	}
	return m.draw(q)
}

// newStalls summarises the slow steps among n steps of one kind.
func newStalls(excess []float64, n int) *Stalls {
	st := &Stalls{Steps: n}
	if n == 0 {
		return st
	}
	st.Fraction = float64(len(excess)) / float64(n)
	if len(excess) == 0 {
		return st
	}
	sort.Float64s(excess)
	for i := 0; i <= stallQuantiles; i++ {
		st.ExcessNs = append(st.ExcessNs, int64(math.Round(quantile(excess, float64(i)/stallQuantiles))))
	}
	return st
}

// draw samples a distribution given by equally spaced quantiles.
func (m *StepModel) draw(q []int64) int64 {
	f := make([]float64, len(q))
	for i, x := range q {
		f[i] = float64(x)
	}
	return int64(math.Round(m.drawFloat(f)))
}

func (m *StepModel) drawFloat(q []float64) float64 {
	if m.rng == nil {
		m.SetSeed(0)
	}
	u := m.rng.Float64() * float64(len(q)-1)
	i := int(u)
	if i+1 >= len(q) {
		return q[len(q)-1]
	}
	f := u - float64(i)
	return q[i]*(1-f) + q[i+1]*f
}

// ResidualStats summarise how well the model fits its training steps.
type ResidualStats struct {
	MeanNs      float64 `json:"mean_ns"`
	StdNs       float64 `json:"std_ns"`
	MAPE        float64 `json:"mape"`
	AbsRelP50   float64 `json:"abs_rel_p50"`
	AbsRelP90   float64 `json:"abs_rel_p90"`
	AbsRelP99   float64 `json:"abs_rel_p99"`
	GapMedianNs int64   `json:"gap_median_ns"`
	GapP90Ns    int64   `json:"gap_p90_ns"`
	GapsCounted int     `json:"gaps_counted"`
}

// TrainingCell names one real run the model was fitted on.
type TrainingCell struct {
	Instance string         `json:"instance"`
	Matrix   map[string]any `json:"matrix,omitempty"`
	Dir      string         `json:"dir,omitempty"`
	Steps    int            `json:"steps"`
}

func (m *StepModel) raw(s sched.Shape) float64 {
	var t float64
	for j, f := range m.Features {
		t += m.Coef[j] * m.Padding.featureValue(f, s)
	}
	return t
}

// PredictStep is the model's time for a recorded step's composition.
func (m *StepModel) PredictStep(s Step) int64 {
	if m.Mechanics != nil {
		return m.predictMech(s)
	}
	return m.PredictShape(s.shape())
}

// PredictShape is the model's step time for a batch shape.
func (m *StepModel) PredictShape(s sched.Shape) int64 {
	return max(int64(math.Round(m.raw(s))), m.MinStepNs)
}

func (m *StepModel) Name() string { return "step-model" }
func (m *StepModel) GapNs() int64 { return m.InterStepGapNs }

// StepNs predicts an iteration and, for an engine with CUDA graphs, adds a
// capture the first time a padded shape occurs in the simulation.
func (m *StepModel) StepNs(b *sched.Batch) int64 {
	sh := b.Shape()
	if m.Mechanics != nil {
		return m.mechStep(sh)
	}
	t := m.PredictShape(sh) + m.stall(sh)
	if m.CaptureNs > 0 {
		if m.seen == nil {
			m.seen = map[[2]int64]bool{}
			for _, k := range m.WarmShapes {
				m.seen[k] = true
			}
		}
		if k := m.Padding.key(sh); !m.seen[k] {
			m.seen[k] = true
			if len(m.CaptureRunNs) > 1 && len(m.CaptureRatio) > 1 {
				if m.captureLevel == 0 {
					m.captureLevel = m.draw(m.CaptureRunNs)
				}
				t += int64(math.Round(float64(m.captureLevel) * m.drawFloat(m.CaptureRatio)))
			} else if len(m.CaptureExcessNs) > 1 {
				t += m.draw(m.CaptureExcessNs)
			} else {
				t += m.CaptureNs
			}
		}
	}
	return t
}
func (m *StepModel) Describe() map[string]any {
	if mc := m.Mechanics; mc != nil {
		return map[string]any{"name": m.Name(), "form": "mechanics", "host": mc.Host, "device": mc.Device,
			"capture": mc.Capture, "graphs": mc.Graphs, "gap_ns": m.InterStepGapNs, "num_steps": m.NumSteps,
			"graphs_cached_at_end": len(m.CachedGraphs())}
	}
	return map[string]any{"name": m.Name(), "features": m.Features, "coefficients_ns": m.Coef,
		"gap_ns": m.InterStepGapNs, "r2": m.R2, "num_steps": m.NumSteps, "padding": m.Padding,
		"capture_ns": m.CaptureNs, "stall_fraction": m.StallFraction}
}
