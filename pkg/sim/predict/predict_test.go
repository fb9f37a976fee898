package predict

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gsim-dev/gsim/pkg/profile"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestLine(t *testing.T) {
	l := newLine([]float64{4, 1, 2, 2}, []float64{40, 10, 18, 22})
	for _, c := range []struct{ x, want float64 }{{1, 10}, {2, 20}, {3, 30}, {4, 40}, {5, 50}, {0, 0}, {1.5, 15}} {
		if got := l.at(c.x); !near(got, c.want) {
			t.Errorf("at(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

func TestGrid2(t *testing.T) {
	// f(a, b) = a + 10 b on a grid with uneven rows.
	var as, bs, ys []float64
	for _, a := range []float64{1, 2, 4} {
		for _, b := range []float64{0, 64, 128, 256} {
			if a == 4 && b == 64 {
				continue
			}
			as, bs, ys = append(as, a), append(bs, b), append(ys, a+10*b)
		}
	}
	g := newGrid2(as, bs, ys, false)
	for _, c := range [][2]float64{{1, 0}, {2, 64}, {3, 100}, {4, 64}, {8, 300}, {1.5, 200}} {
		if got, want := g.at(c[0], c[1]), c[0]+10*c[1]; !near(got, want) {
			t.Errorf("at(%v) = %v, want %v", c, got, want)
		}
	}
}

// testProfile has times linear in its keys, so interpolation is exact and
// the decomposition can be checked by hand.
func testProfile() *profile.Profile {
	p := &profile.Profile{Device: "h100", Model: "Qwen/Qwen3-0.6B"}
	for _, n := range []int{1, 8, 16, 64, 256, 1024} {
		r := profile.MLPRow{NumTokens: n, TimeMs: map[string]float64{}, NHead: 16, NKVHead: 8, NEmbd: 1024,
			NExpandedEmbd: 3072, NumTensorParallelWorkers: 1}
		for _, op := range profile.MLPOps {
			r.TimeMs[op] = 0.001 * float64(n)
		}
		p.MLP = append(p.MLP, r)
	}
	for _, kv := range []int{0, 512, 1024} {
		for _, chunk := range []int{16, 64, 256} {
			p.Attention = append(p.Attention, profile.AttentionRow{BatchSize: 1, PrefillChunkSize: chunk, KVCacheSize: kv, IsPrefill: true,
				TimeMs: map[string]float64{"attn_prefill": 0.01 + 1e-4*float64(kv) + 1e-6*float64(chunk*chunk), "attn_kv_cache_save": 0.001 * float64(chunk)},
				NEmbd:  1024, NQHead: 16, NKVHead: 8, NumTensorParallelWorkers: 1})
		}
	}
	for _, b := range []int{1, 4, 16} {
		for _, kv := range []int{64, 512, 1024} {
			p.Attention = append(p.Attention, profile.AttentionRow{BatchSize: b, KVCacheSize: kv,
				TimeMs: map[string]float64{"attn_decode": 0.002*float64(b) + 1e-5*float64(kv), "attn_kv_cache_save": 0.001 * float64(b)},
				NEmbd:  1024, NQHead: 16, NKVHead: 8, NumTensorParallelWorkers: 1})
		}
	}
	return p
}

func TestVidurDecomposition(t *testing.T) {
	vm := VidurModel{NumLayers: 28, NumQHeads: 16, NumKVHeads: 8, Hidden: 1024, PostAttnNorm: true}
	p, err := NewVidurProfile(testProfile(), vm, NewVidurOptions())
	if err != nil {
		t.Fatal(err)
	}
	// One prefill of 100 tokens with nothing cached, two decodes at 300 and
	// 401 processed tokens.
	pre := sched.NewRequest(0, 0, 0, 100, 5)
	d1 := sched.NewRequest(1, 1, 0, 299, 5)
	d1.PrefillDone, d1.Processed = true, 300
	d2 := sched.NewRequest(2, 2, 0, 400, 5)
	d2.PrefillDone, d2.Processed = true, 401
	b := &sched.Batch{Entries: []sched.Entry{
		{Req: pre, Tokens: 100, Prefill: true, ProcessedBefore: 0},
		{Req: d1, Tokens: 1, ProcessedBefore: 300},
		{Req: d2, Tokens: 1, ProcessedBefore: 401},
	}}
	total := 102.0
	rounded := 104.0 // up to a multiple of 8
	ops := 9 * 0.001 * rounded
	kvSave := 0.001 * total
	decodeKV := 384.0 // int(mean(300, 401)) = 350, up to a multiple of 64
	decode := (0.002*2 + 1e-5*decodeKV) * 1.1
	prefill := 0.01 + 1e-6*100*100
	want := (ops + kvSave + decode + prefill) * 28
	if got := p.StepMs(b); !near(got, want) {
		t.Fatalf("StepMs = %v, want %v", got, want)
	}
	if p.GapNs() != 0 {
		t.Fatal("Vidur has no inter-iteration gap")
	}
}

func TestFitRecoversLaw(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var run []Step
	var at int64
	for i := 0; i < 2000; i++ {
		s := Step{DecodeTokens: rng.Int64N(64)}
		if rng.IntN(3) == 0 {
			s.PrefillTokens = 1 + rng.Int64N(600)
			s.PrefillRequests = 1
		}
		s.Requests = s.DecodeTokens + s.PrefillRequests
		s.ContextTokens = s.DecodeTokens*rng.Int64N(800) + s.PrefillTokens
		d := 27e6 + 9e3*float64(s.PrefillTokens) + 45e3*float64(s.DecodeTokens) + 20*float64(s.ContextTokens) +
			300e3*float64(s.Requests) + 0.5*float64(s.PrefillTokens*s.PrefillTokens)
		s.StartNs, s.EndNs = at, at+int64(d)
		at = s.EndNs + 800_000
		run = append(run, s)
	}
	m, err := Fit([][]Step{run}, []string{FeatIntercept, FeatPrefillTokens, FeatDecodeTokens, FeatContextTokens, FeatRequests, FeatPrefillTokensSq}, Padding{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{FeatIntercept: 27e6, FeatPrefillTokens: 9e3, FeatDecodeTokens: 45e3,
		FeatContextTokens: 20, FeatRequests: 300e3, FeatPrefillTokensSq: 0.5}
	for i, f := range m.Features {
		if math.Abs(m.Coef[i]-want[f]) > 1e-3*math.Abs(want[f])+1e-6 {
			t.Errorf("%s = %v, want %v", f, m.Coef[i], want[f])
		}
	}
	if m.R2 < 0.999999 || m.GapNs() != 800_000 {
		t.Fatalf("R² %v gap %d", m.R2, m.GapNs())
	}
	if _, err := Fit([][]Step{run[:3]}, nil, Padding{}); err == nil {
		t.Fatal("fitting 6 coefficients to 3 steps did not fail")
	}
	// requests = decode_tokens + prefill_requests: the last of the three is
	// dropped, not fitted to nonsense, and the law is still found.
	cm, err := Fit([][]Step{run}, []string{FeatIntercept, FeatDecodeTokens, FeatRequests, FeatPrefillRequests}, Padding{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cm.Dropped, []string{FeatPrefillRequests}) || cm.Coef[3] != 0 {
		t.Fatalf("dropped %v, coefficients %v: want prefill_requests dropped", cm.Dropped, cm.Coef)
	}
}

// An engine that prepares the next batch while the GPU runs records steps
// that overlap; the model must learn the time between step ends, not the
// overlapping spans.
func TestFitOverlappingSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	var run []Step
	var end int64 = 5_000_000
	for i := 0; i < 500; i++ {
		s := Step{DecodeTokens: 1 + rng.Int64N(64)}
		s.Requests = s.DecodeTokens
		d := 20e6 + 100e3*float64(s.DecodeTokens)
		s.StartNs = end - 3_000_000 // prepared 3 ms before the previous step ended
		s.EndNs = end + int64(d)
		end = s.EndNs
		run = append(run, s)
	}
	m, err := Fit([][]Step{run}, []string{FeatIntercept, FeatDecodeTokens}, Padding{})
	if err != nil {
		t.Fatal(err)
	}
	// The first step has no predecessor and keeps its 3 ms of preparation.
	if math.Abs(m.Coef[0]-20e6) > 0.01*20e6 || math.Abs(m.Coef[1]-100e3) > 0.01*100e3 || m.GapNs() != 0 {
		t.Fatalf("coefficients %v gap %d, want [20e6 100e3] and 0", m.Coef, m.GapNs())
	}
}

// An engine with CUDA graphs: the first step of each padded shape in a run
// captures a graph (+100 ms) unless the warm-up captured it, and 3% of
// steps stall. The fit must learn the law without them, the capture cost,
// the warm shapes and the stall rate.
func TestFitGraphCapturesAndStalls(t *testing.T) {
	pad := Padding{Query: 64, KV: 16384}
	warm := [2]int64{64, 16384}
	var runs [][]Step
	rng := rand.New(rand.NewPCG(3, 3))
	stalls, total := 0, 0
	for r := 0; r < 3; r++ {
		var run []Step
		seen := map[[2]int64]bool{warm: true}
		var at int64
		for i := 0; i < 1500; i++ {
			s := Step{DecodeTokens: 1 + rng.Int64N(60)}
			if rng.IntN(4) == 0 {
				s.PrefillTokens = 1 + rng.Int64N(1500)
				s.PrefillRequests = 1
			}
			s.Requests = s.DecodeTokens + s.PrefillRequests
			s.ContextTokens = s.DecodeTokens*(100+rng.Int64N(600)) + s.PrefillTokens
			sh := s.shape()
			d := 20e6 + 300e3*float64(s.Requests) + 2*pad.featureValue(FeatPaddedAttention, sh)
			k := pad.key(sh)
			if !seen[k] {
				seen[k] = true
				d += 100e6
			} else if rng.Float64() < 0.03 {
				d += 40e6
				stalls++
			}
			total++
			s.StartNs, s.EndNs = at, at+int64(d)
			at = s.EndNs + 1e6
			run = append(run, s)
		}
		runs = append(runs, run)
	}
	m, err := Fit(runs, []string{FeatIntercept, FeatRequests, FeatPaddedAttention}, pad)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.Coef[0]-20e6) > 0.02*20e6 || math.Abs(m.Coef[1]-300e3) > 0.02*300e3 || math.Abs(m.Coef[2]-2) > 0.02*2 {
		t.Errorf("coefficients %v, want [20e6 300e3 2]", m.Coef)
	}
	if math.Abs(float64(m.CaptureNs)-100e6) > 5e6 {
		t.Errorf("capture %d ns, want about 100 ms", m.CaptureNs)
	}
	if !slices.Contains(m.WarmShapes, warm) {
		t.Errorf("warm shapes %v miss %v", m.WarmShapes, warm)
	}
	if want := float64(stalls) / float64(total); math.Abs(m.StallFraction-want) > 0.01 {
		t.Errorf("stall fraction %.3f, want about %.3f", m.StallFraction, want)
	}
	// A simulation adds the capture once per new shape and never for warm ones.
	b := &sched.Batch{Entries: []sched.Entry{{Req: sched.NewRequest(0, 0, 0, 1, 1), Tokens: 1, CacheBefore: 100}}}
	m.StallFraction, m.PrefillStalls, m.DecodeStalls = 0, nil, nil
	first, again := m.StepNs(b), m.StepNs(b)
	if first != again {
		t.Errorf("warm shape charged a capture: %d then %d", first, again)
	}
	b.Entries[0].Tokens = 100
	first, again = m.StepNs(b), m.StepNs(b)
	if d := first - again; d < m.CaptureExcessNs[0] || d > m.CaptureExcessNs[len(m.CaptureExcessNs)-1] {
		t.Errorf("new shape: %d then %d, want a difference within the capture distribution %v", first, again, m.CaptureExcessNs)
	}
}

// synthRun is a run of steps whose duration law(s) gives; prefill steps
// have 1..1500 prefill tokens, a quarter of the steps.
func synthRun(rng *rand.Rand, n int, law func(Step) float64) []Step {
	var run []Step
	var at int64
	for i := 0; i < n; i++ {
		s := Step{DecodeTokens: 1 + rng.Int64N(60)}
		if rng.IntN(4) == 0 {
			s.PrefillTokens = 1 + rng.Int64N(1500)
			s.PrefillRequests = 1
		}
		s.Requests = s.DecodeTokens + s.PrefillRequests
		s.ContextTokens = s.DecodeTokens*(100+rng.Int64N(600)) + s.PrefillTokens
		s.StartNs = at
		s.EndNs = at + int64(law(s))
		at = s.EndNs + 1e6
		run = append(run, s)
	}
	return run
}

func TestFitStallsByStepKind(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	slow := 0
	run := synthRun(rng, 4000, func(s Step) float64 {
		d := 20e6 + 300e3*float64(s.Requests) + 5e3*float64(s.PrefillTokens)
		if s.PrefillTokens > 0 && rng.Float64() < 0.2 {
			slow++
			d += 50e6
		}
		return d
	})
	m, err := Fit([][]Step{run}, []string{FeatIntercept, FeatRequests, FeatPrefillTokens}, Padding{})
	if err != nil {
		t.Fatal(err)
	}
	if m.PrefillStalls == nil || math.Abs(m.PrefillStalls.Fraction-0.2) > 0.03 {
		t.Fatalf("prefill stalls %+v, want a fraction of about 0.2", m.PrefillStalls)
	}
	if m.DecodeStalls == nil || m.DecodeStalls.Fraction != 0 {
		t.Errorf("decode stalls %+v, want none", m.DecodeStalls)
	}
	if q := m.PrefillStalls.ExcessNs; math.Abs(float64(q[len(q)/2])-50e6) > 1e6 {
		t.Errorf("prefill stall excess median %d, want about 50 ms", q[len(q)/2])
	}
	// A simulation stalls prefill steps at their rate and decode-only
	// steps never.
	dec := &sched.Batch{Entries: []sched.Entry{{Req: sched.NewRequest(0, 0, 0, 100, 8), Tokens: 1, CacheBefore: 100}}}
	pre := &sched.Batch{Entries: []sched.Entry{{Req: sched.NewRequest(1, 1, 0, 100, 1), Tokens: 100, Prefill: true}}}
	m.SetSeed(1)
	base := m.PredictShape(pre.Shape())
	stalled := 0
	for i := 0; i < 2000; i++ {
		if d := m.StepNs(dec); d != m.PredictShape(dec.Shape()) {
			t.Fatalf("decode-only step stalled: %d", d)
		}
		if m.StepNs(pre) > base {
			stalled++
		}
	}
	if f := float64(stalled) / 2000; math.Abs(f-m.PrefillStalls.Fraction) > 0.03 {
		t.Errorf("prefill steps stalled %.3f of the time, want %.3f", f, m.PrefillStalls.Fraction)
	}
}

func TestFitCostsNonNegative(t *testing.T) {
	// Prefill tokens make a step faster in this data: no engine does that,
	// so the fit holds that cost at zero instead of fitting it negative.
	rng := rand.New(rand.NewPCG(5, 6))
	run := synthRun(rng, 1000, func(s Step) float64 {
		return 20e6 + 300e3*float64(s.Requests) - 2e3*float64(s.PrefillTokens)
	})
	m, err := Fit([][]Step{run}, []string{FeatIntercept, FeatRequests, FeatPrefillTokens}, Padding{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Coef[2] != 0 || !slices.Contains(m.Clamped, FeatPrefillTokens) {
		t.Errorf("prefill_tokens coefficient %g (clamped %v), want 0 and clamped", m.Coef[2], m.Clamped)
	}
	for i, c := range m.Coef {
		if c < 0 {
			t.Errorf("%s: negative cost %g", m.Features[i], c)
		}
	}
}

func TestFitRobustToSlowRegime(t *testing.T) {
	// One step in eight runs 30% slow (below the stall threshold, so it
	// stays in the fit): least squares drifts up with them, the Huber fit
	// follows the bulk.
	rng := rand.New(rand.NewPCG(7, 8))
	law := func(s Step) float64 { return 20e6 + 300e3*float64(s.Requests) }
	run := synthRun(rng, 3000, func(s Step) float64 {
		d := law(s) * (1 + 0.01*rng.NormFloat64())
		if rng.IntN(8) == 0 {
			d *= 1.3
		}
		return d
	})
	feats := []string{FeatIntercept, FeatRequests}
	m, err := Fit([][]Step{run}, feats, Padding{})
	if err != nil {
		t.Fatal(err)
	}
	var set []sample
	for i, s := range run {
		set = append(set, sample{shape: s.shape(), dur: effectiveNs(run, i)})
	}
	ols, err := solve(set, feats, []int{0, 1}, Padding{})
	if err != nil {
		t.Fatal(err)
	}
	probe := Step{DecodeTokens: 30, Requests: 30}
	want := law(probe)
	olsErr := (ols[0] + 30*ols[1] - want) / want
	if olsErr < 0.02 {
		t.Fatalf("least squares is only %+.2f%% off; the contamination does not test anything", 100*olsErr)
	}
	if e := (float64(m.PredictStep(probe)) - want) / want; math.Abs(e) > 0.01 {
		t.Errorf("robust fit %+.2f%% off the law (least squares %+.2f%%)", 100*e, 100*olsErr)
	}
}

func TestFitCaptureLevelPerRun(t *testing.T) {
	// Two runs capture at 50 ms, two at 150 ms (±10% within a run).
	pad := Padding{Query: 64, KV: 16384}
	rng := rand.New(rand.NewPCG(9, 10))
	var runs [][]Step
	for _, level := range []float64{50e6, 150e6, 50e6, 150e6} {
		seen := map[[2]int64]bool{}
		runs = append(runs, synthRun(rng, 1500, func(s Step) float64 {
			d := 20e6 + 300e3*float64(s.Requests) + 2*pad.featureValue(FeatPaddedAttention, s.shape())
			if k := pad.key(s.shape()); !seen[k] {
				seen[k] = true
				d += level * (0.9 + 0.2*rng.Float64())
			}
			return d
		}))
	}
	m, err := Fit(runs, []string{FeatIntercept, FeatRequests, FeatPaddedAttention}, pad)
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := m.CaptureRunNs[0], m.CaptureRunNs[len(m.CaptureRunNs)-1]; math.Abs(float64(lo)-50e6) > 5e6 || math.Abs(float64(hi)-150e6) > 15e6 {
		t.Fatalf("run levels %v, want from about 50 ms to about 150 ms", m.CaptureRunNs)
	}
	if r := m.CaptureRatio; r[0] < 0.8 || r[len(r)-1] > 1.2 {
		t.Errorf("within-run ratios %v, want within 0.8..1.2", r)
	}
	// One simulation keeps one level: its captures stay within the
	// within-run spread of each other.
	for seed := uint64(0); seed < 5; seed++ {
		sm := *m
		sm.SetSeed(seed)
		var caps []int64
		for q := int64(64); q <= 64*20; q += 64 {
			b := &sched.Batch{Entries: []sched.Entry{{Req: sched.NewRequest(0, 0, 0, q, 1), Tokens: q, Prefill: true}}}
			caps = append(caps, sm.StepNs(b)-sm.PredictShape(b.Shape()))
		}
		lo, hi := slices.Min(caps), slices.Max(caps)
		if float64(hi) > 1.6*float64(lo) {
			t.Errorf("seed %d: captures from %d to %d ns, want one run level", seed, lo, hi)
		}
	}
}

func TestVersionOneModelStallsEveryStep(t *testing.T) {
	// A model written before stalls were split by kind of step stalls
	// every kind at its one rate.
	m := &StepModel{Features: []string{FeatIntercept}, Coef: []float64{20e6}, StallFraction: 0.5,
		StallExcessNs: []int64{10e6, 10e6}}
	m.SetSeed(2)
	dec := &sched.Batch{Entries: []sched.Entry{{Req: sched.NewRequest(0, 0, 0, 100, 8), Tokens: 1, CacheBefore: 100}}}
	stalled := 0
	for i := 0; i < 1000; i++ {
		if m.StepNs(dec) == 30e6 {
			stalled++
		}
	}
	if stalled < 400 || stalled > 600 {
		t.Errorf("%d of 1000 decode steps stalled, want about 500", stalled)
	}
}

// The single-law form's attention in waves: a law whose attention cost
// steps up every 1024 padded query tokens is recovered with its wave
// width; without steps past a boundary none is chosen, and the feature
// reads one wave.
func TestFitChoosesAttentionWave(t *testing.T) {
	pad := Padding{Query: 64, KV: 16384}
	law := func(sh sched.Shape) float64 {
		p := pad
		p.Wave = 1024
		return 6e6 + 100e3*float64(sh.Requests) + 3000*p.featureValue(FeatPaddedQueryTokens, sh) +
			300*p.featureValue(FeatPaddedKVTokens, sh) + 700*p.featureValue(FeatAttentionWaves, sh)
	}
	runs := func(maxPrefill int64) [][]Step {
		rng := rand.New(rand.NewPCG(5, 5))
		var out [][]Step
		for r := 0; r < 2; r++ {
			var run []Step
			var at int64
			for i := 0; i < 1500; i++ {
				s := Step{DecodeTokens: 1 + rng.Int64N(60)}
				if rng.IntN(3) == 0 {
					s.PrefillTokens = 1 + rng.Int64N(maxPrefill)
					s.PrefillRequests = 1
				}
				s.Requests = s.DecodeTokens + s.PrefillRequests
				s.ContextTokens = s.DecodeTokens*(100+rng.Int64N(1500)) + s.PrefillTokens
				s.StartNs, s.EndNs = at, at+int64(law(s.shape()))
				at = s.EndNs + 1e6
				run = append(run, s)
			}
			out = append(out, run)
		}
		return out
	}
	m, err := Fit(runs(3000), WaveFeatures, pad)
	if err != nil {
		t.Fatal(err)
	}
	if m.Padding.Wave != 1024 {
		t.Errorf("wave width %d, want 1024", m.Padding.Wave)
	}
	// Far beyond the training steps: a full 8192-token prefill.
	big := sched.Shape{Requests: 9, PrefillRequests: 1, PrefillTokens: 8184, DecodeTokens: 8, ContextTokens: 40000}
	if got, want := float64(m.PredictShape(big)), law(big); math.Abs(got-want) > 0.01*want {
		t.Errorf("8192-token step: %.0f ns, want %.0f", got, want)
	}
	if m, err = Fit(runs(900), WaveFeatures, pad); err != nil {
		t.Fatal(err)
	}
	if m.Padding.Wave != 0 || !slices.Contains(m.Dropped, FeatAttentionWaves) {
		t.Errorf("no step past 1024 query tokens: wave %d, dropped %v; want none and the feature dropped", m.Padding.Wave, m.Dropped)
	}
	for _, tc := range []struct {
		pd   Padding
		sh   sched.Shape
		want float64
	}{
		{Padding{Query: 64, KV: 16384, Wave: 1024}, sched.Shape{PrefillTokens: 1000, ContextTokens: 1000}, 16384},
		{Padding{Query: 64, KV: 16384, Wave: 1024}, sched.Shape{PrefillTokens: 1030, ContextTokens: 20000}, 2 * 32768},
		{Padding{Query: 64, KV: 16384}, sched.Shape{PrefillTokens: 8000, ContextTokens: 20000}, 32768},
		{Padding{}, sched.Shape{PrefillTokens: 10, ContextTokens: 300}, 3000},
	} {
		if got := tc.pd.featureValue(FeatAttentionWaves, tc.sh); got != tc.want {
			t.Errorf("%+v %+v: attention_waves %v, want %v", tc.pd, tc.sh, got, tc.want)
		}
	}
}
