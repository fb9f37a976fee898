package predict

import (
	"math"
	"testing"

	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// The engine's own padding rules (transformers 5.17 utils.pad_to_interval
// and pad_to_pow2), on the settings the recorded runs used.
var h200Graphs = GraphConfig{QPadding: 64, KVPadding: 16384, MaxBatchTokens: 8192, CacheTokens: 262144, SeqlenMin: 1024}

func TestGraphKey(t *testing.T) {
	cases := []struct {
		name string
		sh   sched.Shape
		want GraphKey
	}{
		{"one decode, nothing cached yet", sched.Shape{Requests: 1, DecodeTokens: 1, ContextTokens: 1, MaxContextTokens: 1}, GraphKey{64, 16384, 1024}},
		{"prefill of 65 tokens", sched.Shape{Requests: 1, PrefillTokens: 65, ContextTokens: 65, MaxContextTokens: 65}, GraphKey{128, 16384, 1024}},
		// KV read is context minus query: 16384 cached tokens stay in the
		// first interval, one more crosses it.
		{"KV at the interval", sched.Shape{Requests: 20, DecodeTokens: 20, ContextTokens: 16404, MaxContextTokens: 1025}, GraphKey{64, 16384, 2048}},
		{"KV past the interval", sched.Shape{Requests: 20, DecodeTokens: 20, ContextTokens: 16405, MaxContextTokens: 2048}, GraphKey{64, 32768, 2048}},
		{"query capped at max_batch_tokens", sched.Shape{Requests: 3, PrefillTokens: 8192, ContextTokens: 8192, MaxContextTokens: 4000}, GraphKey{8192, 16384, 4096}},
		{"KV capped at the cache", sched.Shape{Requests: 9, DecodeTokens: 9, ContextTokens: 300000, MaxContextTokens: 300000}, GraphKey{64, 262144, 262144}},
	}
	for _, tc := range cases {
		if got := h200Graphs.Key(tc.sh); got != tc.want {
			t.Errorf("%s: key %v, want %v", tc.name, got, tc.want)
		}
	}
	// The recorded runs' warmup() graph: 8192x262144x262144.
	if w := h200Graphs.WarmupKey(); w != (GraphKey{8192, 262144, 262144}) {
		t.Errorf("warm-up key %v", w)
	}
}

func TestGraphCacheLRU(t *testing.T) {
	c := newGraphCache(2)
	a, b, d := GraphKey{64, 1, 1}, GraphKey{128, 1, 1}, GraphKey{192, 1, 1}
	if c.use(a) || c.use(b) || !c.use(a) {
		t.Fatal("first uses must miss, a repeat must hit")
	}
	c.use(d) // evicts b, the least recently used
	if !c.use(a) || c.use(b) {
		t.Error("LRU eviction evicted the wrong graph")
	}
	u := newGraphCache(0)
	for i := int64(1); i <= 100; i++ {
		u.use(GraphKey{64 * i, 1, 1})
	}
	if !u.use(GraphKey{64, 1, 1}) {
		t.Error("an unbounded cache evicted a graph")
	}
	if !u.seenShape(GraphKey{64, 1, 99}) || u.seenShape(GraphKey{64, 2, 1}) {
		t.Error("seenShape must match on (query, KV) only")
	}
}

// synthetic builds runs whose steps follow known laws exactly, with a
// capture the first time each key occurs (the eager forward's device time
// plus an overhead, dearer for a fresh shape). A replayed step's compute
// phase is the device law; its device wait is that minus a 0.2 ms launch,
// except on a graph's first replay, whose launch takes 2.5 ms more and
// whose wait is as much shorter (the graph's upload overlaps the GPU).
// Prefill chunks reach maxPrefill tokens.
func synthetic(host, dev func(sched.Shape, GraphKey) float64, capOld, capFresh float64, maxPrefill int) [][]Step {
	var runs [][]Step
	for r := 0; r < 2; r++ {
		cache := newGraphCache(0)
		cache.use(h200Graphs.WarmupKey())
		replayed := map[GraphKey]bool{}
		var steps []Step
		var t int64
		for i := 0; i < 1500; i++ {
			reqs := int64(1 + (i*7+r*3)%40)
			pre := int64(0)
			if i%5 == 0 {
				pre = int64(1 + (i*13)%maxPrefill)
			}
			ctx := reqs*int64(100+(i*31)%900) + pre
			maxCtx := int64(200 + (i*17)%3000)
			sh := sched.Shape{Requests: reqs + min(pre, 1), PrefillRequests: min(pre, 1), DecodeRequests: reqs, PrefillTokens: pre,
				DecodeTokens: reqs, ContextTokens: ctx, MaxContextTokens: maxCtx}
			k := h200Graphs.Key(sh)
			fresh := !cache.seenShape(k)
			hit := cache.use(k)
			d := &StepDetail{Key: k, Hit: 0, MaxContextTokens: maxCtx}
			dur := host(sh, k)
			if hit {
				d.Hit = 1
				d.ComputeNs = int64(dev(sh, k))
				launch := int64(0.2e6)
				if !replayed[k] {
					launch += 2.5e6
				}
				replayed[k] = true
				d.DeviceNs = d.ComputeNs - launch
				dur += dev(sh, k)
			} else if fresh {
				dur += dev(sh, k) + capFresh
			} else {
				dur += dev(sh, k) + capOld
			}
			steps = append(steps, Step{StartNs: t, EndNs: t + int64(dur), PrefillTokens: sh.PrefillTokens, DecodeTokens: sh.DecodeTokens,
				Requests: sh.Requests, PrefillRequests: sh.PrefillRequests, DecodeRequests: sh.DecodeRequests, ContextTokens: ctx, Detail: d})
			t += int64(dur) + 10000
		}
		runs = append(runs, steps)
	}
	return runs
}

// synthHost is a host law as the code implies: per step, per request, per
// query token, per cached KV token read.
func synthHost(sh sched.Shape, _ GraphKey) float64 {
	q := sh.PrefillTokens + sh.DecodeTokens
	return 1e6 + 40e3*float64(sh.Requests) + 1500*float64(q) + 150*float64(sh.ContextTokens-q)
}

// synthDevice is a device law with the attention in waves of 1024 padded
// query tokens over the padded KV read plus the padded query.
func synthDevice(_ sched.Shape, k GraphKey) float64 {
	kt := float64(k.KV + k.Q)
	return 5e6 + 2000*float64(k.Q) + 400*kt + 600*waves(k.Q, 1024)*kt
}

func TestFitMechanicsRecoversLaws(t *testing.T) {
	m, err := FitMechanics(synthetic(synthHost, synthDevice, 50e6, 100e6, 2400), h200Graphs, nil)
	if err != nil {
		t.Fatal(err)
	}
	mc := m.Mechanics
	if m.SchemaVersion != MechanicsVersion || mc.Captures == 0 || mc.Steps == 0 {
		t.Fatalf("version %d, %d captures, %d steps", m.SchemaVersion, mc.Captures, mc.Steps)
	}
	if mc.Wave != 1024 {
		t.Errorf("attention wave width %d, want 1024", mc.Wave)
	}
	if mc.HostError.AbsRelP90 > 1e-6 || mc.DeviceError.AbsRelP90 > 1e-6 {
		t.Errorf("an exact law is not recovered: host P90 %v, device P90 %v", mc.HostError.AbsRelP90, mc.DeviceError.AbsRelP90)
	}
	for _, sh := range []sched.Shape{
		{Requests: 10, DecodeRequests: 10, DecodeTokens: 10, ContextTokens: 5010, MaxContextTokens: 700},
		// Beyond anything trained on: a full 8192-token prefill over a
		// long cache read extrapolates by the waves.
		{Requests: 30, PrefillRequests: 20, DecodeRequests: 10, PrefillTokens: 8182, DecodeTokens: 10, ContextTokens: 60000, MaxContextTokens: 3000},
	} {
		k := h200Graphs.Key(sh)
		x := mechX{sh: sh, k: k, wave: mc.Wave}
		fwd, overOld := mc.capture(x)
		x.fresh = true
		_, overFresh := mc.capture(x)
		for _, tc := range []struct {
			name      string
			got, want float64
		}{
			{"host", mc.Host.at(x), synthHost(sh, k)},
			{"device", mc.Device.at(x), synthDevice(sh, k)},
			{"capture's eager forward", fwd, synthDevice(sh, k)},
			{"capture overhead of a known shape", overOld, 50e6},
			{"capture overhead of a fresh shape", overFresh, 100e6},
		} {
			if math.Abs(tc.got-tc.want) > 1e-3*tc.want {
				t.Errorf("%v %s: %.0f ns, want %.0f", k, tc.name, tc.got, tc.want)
			}
		}
	}
}

// The device law is fitted on the compute phase (the replay call and the
// wait), not on the wait alone: a graph's first replay moves ~2.5 ms from
// the wait into the call, and a law on the wait would put that in the host.
func TestFitMechanicsDeviceOnComputePhase(t *testing.T) {
	runs := synthetic(synthHost, synthDevice, 50e6, 100e6, 2400)
	m, err := FitMechanics(runs, h200Graphs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range runs[0][:50] {
		if s.Detail.Hit != 1 {
			continue
		}
		h, d := m.MechanicsParts(s)
		if math.Abs(d-float64(s.Detail.ComputeNs)) > 1e3 || math.Abs(h+d-float64(s.EndNs-s.StartNs)) > 1e3 {
			t.Fatalf("step %+v: host %.0f + device %.0f ns, want device %d (the compute phase) and their sum the step", s.Detail, h, d, s.Detail.ComputeNs)
		}
	}
	// Without compute_start recorded, the wait is all there is.
	for _, r := range runs {
		for _, s := range r {
			s.Detail.ComputeNs = 0
		}
	}
	if m, err = FitMechanics(runs, h200Graphs, nil); err != nil {
		t.Fatal(err)
	}
	if m.Mechanics.DeviceError.AbsRelP50 > 0.05 {
		t.Errorf("device law on the wait alone: P50 error %.3f", m.Mechanics.DeviceError.AbsRelP50)
	}
}

// Training steps that never cross a wave boundary give no evidence of
// one: the law keeps no wave rather than inventing one.
func TestFitMechanicsNoWaveWithoutEvidence(t *testing.T) {
	m, err := FitMechanics(synthetic(synthHost, synthDevice, 50e6, 100e6, 900), h200Graphs, nil)
	if err != nil {
		t.Fatal(err)
	}
	mc := m.Mechanics
	if mc.Wave != 0 || mc.Device.coef(FeatWaveKV) != 0 {
		t.Errorf("wave %d, wave coefficient %v; want none", mc.Wave, mc.Device.coef(FeatWaveKV))
	}
	sh := sched.Shape{Requests: 10, DecodeRequests: 10, DecodeTokens: 10, ContextTokens: 5010, MaxContextTokens: 700}
	k := h200Graphs.Key(sh)
	if got, want := mc.Device.at(mechX{sh: sh, k: k}), synthDevice(sh, k); math.Abs(got-want) > 1e-3*want {
		t.Errorf("device law inside the training range: %.0f ns, want %.0f", got, want)
	}
}

func TestMechanicsFeatures(t *testing.T) {
	x := func(q, kv int64) mechX { return mechX{k: GraphKey{Q: q, KV: kv, SeqK: 1024}, wave: 1024} }
	for _, tc := range []struct {
		name string
		feat string
		x    mechX
		want float64
	}{
		{"KV total is the padded read plus the padded query", FeatKVTotal, x(64, 16384), 16448},
		{"one wave up to 1024 query tokens", FeatWaveKV, x(1024, 16384), 17408},
		{"a second wave from 1025", FeatWaveKV, x(1088, 16384), 2 * 17472},
		{"eight waves at 8192", FeatWaveKV, x(8192, 49152), 8 * 57344},
		{"no wave width: one wave", FeatWaveKV, mechX{k: GraphKey{Q: 8192, KV: 16384}}, 24576},
		{"device time is what the capture's forward reads", FeatDeviceTime, mechX{dev: 42}, 42},
	} {
		if got := mechValue(tc.feat, tc.x); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A simulation pays a capture the first time a key occurs, nothing for
// keys the warm-up cached, and the cheaper capture for a shape it has run
// under another KV-length key; a capture is the eager forward (the device
// law) plus its overhead, and a drawn ratio scales the overhead only.
func TestMechanicsSimulatesCaptures(t *testing.T) {
	m := &StepModel{SchemaVersion: MechanicsVersion, Mechanics: &Mechanics{
		Graphs:  h200Graphs,
		Host:    Law{Features: []string{FeatIntercept}, Coef: []float64{1e6}},
		Device:  Law{Features: []string{FeatIntercept}, Coef: []float64{20e6}},
		Capture: Law{Features: []string{FeatDeviceTime, FeatIntercept, FeatFreshShape}, Coef: []float64{1, 40e6, 70e6}},
	}}
	batch := func(ctx, maxCtx int64) *sched.Batch {
		r := &sched.Request{ID: 1, Prompt: maxCtx, Decode: 10, Processed: maxCtx, PrefillDone: true}
		b := &sched.Batch{Entries: []sched.Entry{{Req: r, Tokens: 1, CacheBefore: ctx - 1}}}
		return b
	}
	warm := batch(100, 100)
	if err := m.WarmUp(func() error { m.StepNs(warm); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := m.StepNs(batch(100, 100)); got != 21e6 {
		t.Errorf("a key cached by the warm-up: %d ns, want 21 ms (host + device)", got)
	}
	if got := m.StepNs(batch(1500, 1500)); got != 61e6 {
		t.Errorf("a known (query, KV) shape under a new KV-length key: %d ns, want 61 ms (host + forward + old-shape overhead)", got)
	}
	if got := m.StepNs(batch(20000, 2000)); got != 131e6 {
		t.Errorf("a fresh shape: %d ns, want 131 ms (host + forward + fresh overhead)", got)
	}
	if got := m.StepNs(batch(20000, 2000)); got != 21e6 {
		t.Errorf("the same key again: %d ns, want a replay", got)
	}
	m.Mechanics.CaptureRatio = []float64{2, 2}
	if got := m.StepNs(batch(40000, 4000)); got != 1e6+20e6+2*110e6 {
		t.Errorf("a fresh shape with its overhead drawn at 2x: %d ns, want %d (the forward is not scaled)", got, int64(1e6+20e6+2*110e6))
	}
}

// A model written by fit version 3 (device law on padded KV and a padded
// query × KV mask, capture law without the eager forward, host law with a
// per-prefill-request cost) is read and simulated as it was fitted.
func TestMechanicsVersion3StillSimulates(t *testing.T) {
	m, err := ReadStepModel("testdata/step_model_v3.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 3 || m.Mechanics == nil || m.Mechanics.Wave != 0 {
		t.Fatalf("version %d, mechanics %v", m.SchemaVersion, m.Mechanics != nil)
	}
	coef := func(l Law, f string) float64 { return l.coef(f) }
	mc := m.Mechanics
	// 2 prefill requests (700 tokens) and 10 decodes reading 5290 cached
	// tokens: graph 768x16384x1024.
	q, kv := 768.0, 16384.0
	host := coef(mc.Host, FeatIntercept) + coef(mc.Host, FeatRequests)*12 + coef(mc.Host, FeatQueryTokens)*710 +
		coef(mc.Host, FeatKVReadTokens)*(6000-710) + coef(mc.Host, FeatPrefillRequests)*2
	dev := coef(mc.Device, FeatIntercept) + coef(mc.Device, FeatPaddedKVTokens)*kv + coef(mc.Device, FeatPaddedMask)*q*(kv+q)
	capFresh := coef(mc.Capture, FeatIntercept) + coef(mc.Capture, FeatPaddedQueryTokens)*q + coef(mc.Capture, FeatPaddedKVTokens)*kv +
		coef(mc.Capture, FeatFreshShape) + coef(mc.Capture, FeatFreshQuery)*q + coef(mc.Capture, FeatFreshKV)*kv
	step := func(hit int8, fresh bool) Step {
		return Step{EndNs: 1, PrefillTokens: 700, DecodeTokens: 10, Requests: 12, PrefillRequests: 2, DecodeRequests: 10, ContextTokens: 6000,
			Detail: &StepDetail{Key: GraphKey{Q: 768, KV: 16384, SeqK: 1024}, Hit: hit, FreshShape: fresh, MaxContextTokens: 900}}
	}
	if h, d := m.MechanicsParts(step(1, false)); math.Abs(h-host) > 1 || math.Abs(d-dev) > 1 {
		t.Errorf("replayed: %.0f + %.0f ns, want %.0f + %.0f by the version-3 laws", h, d, host, dev)
	}
	if h, c := m.MechanicsParts(step(0, true)); math.Abs(h-host) > 1 || math.Abs(c-capFresh) > 1 {
		t.Errorf("fresh capture: %.0f + %.0f ns, want %.0f + %.0f by the version-3 laws (no eager forward added)", h, c, host, capFresh)
	}
	// In a simulation, the drawn ratio scales the whole version-3 capture.
	m.Mechanics.CaptureRatio = []float64{1.5, 1.5}
	b := &sched.Batch{Entries: []sched.Entry{{Req: &sched.Request{ID: 1, Prompt: 900, Decode: 10, Processed: 200}, Tokens: 700, CacheBefore: 5290}}}
	got := m.StepNs(b)
	bs := b.Shape()
	x := mechX{sh: bs, k: mc.Graphs.Key(bs), fresh: true}
	if want := int64(math.Round(mc.Host.at(x) + 1.5*mc.Capture.at(x))); got != want {
		t.Errorf("simulated fresh capture: %d ns, want %d", got, want)
	}
}

// MechanicsParts splits a recorded step into the host law and the GPU
// part the step paid: the device law when it replayed, the capture law
// (fresh or not, as recorded) when it captured; PredictStep is their sum.
func TestMechanicsParts(t *testing.T) {
	m := &StepModel{SchemaVersion: MechanicsVersion, Mechanics: &Mechanics{
		Graphs:  h200Graphs,
		Host:    Law{Features: []string{FeatIntercept, FeatRequests}, Coef: []float64{1e6, 1e4}},
		Device:  Law{Features: []string{FeatIntercept}, Coef: []float64{20e6}},
		Capture: Law{Features: []string{FeatDeviceTime, FeatIntercept, FeatFreshShape}, Coef: []float64{1, 40e6, 70e6}},
	}}
	step := func(hit int8, fresh bool) Step {
		return Step{EndNs: 1, DecodeTokens: 10, Requests: 10, DecodeRequests: 10, ContextTokens: 5010,
			Detail: &StepDetail{Key: GraphKey{Q: 64, KV: 16384, SeqK: 1024}, Hit: hit, FreshShape: fresh}}
	}
	for _, tc := range []struct {
		name      string
		s         Step
		host, gpu float64
	}{
		{"replayed", step(1, false), 1.1e6, 20e6},
		{"capture of a known shape", step(0, false), 1.1e6, 60e6},
		{"capture of a fresh shape", step(0, true), 1.1e6, 130e6},
		{"no detail: a replay of the computed key", Step{EndNs: 1, DecodeTokens: 10, Requests: 10, DecodeRequests: 10, ContextTokens: 5010}, 1.1e6, 20e6},
	} {
		host, gpu := m.MechanicsParts(tc.s)
		if math.Abs(host-tc.host) > 1 || math.Abs(gpu-tc.gpu) > 1 {
			t.Errorf("%s: host %.0f + gpu %.0f ns, want %.0f + %.0f", tc.name, host, gpu, tc.host, tc.gpu)
		}
		if got := m.PredictStep(tc.s); got != int64(math.Round(host+gpu)) {
			t.Errorf("%s: PredictStep %d ns, not host + gpu %.0f", tc.name, got, host+gpu)
		}
	}
	if h, g := (&StepModel{}).MechanicsParts(step(1, false)); h != 0 || g != 0 {
		t.Errorf("a model without the mechanics form: %v + %v, want 0 + 0", h, g)
	}
}
