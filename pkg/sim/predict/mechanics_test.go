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
// capture the first time each key occurs (fresh shapes dearer).
func synthetic(host, dev func(sched.Shape, GraphKey) float64, capOld, capFresh float64) [][]Step {
	var runs [][]Step
	for r := 0; r < 2; r++ {
		cache := newGraphCache(0)
		cache.use(h200Graphs.WarmupKey())
		var steps []Step
		var t int64
		for i := 0; i < 1500; i++ {
			reqs := int64(1 + (i*7+r*3)%40)
			pre := int64(0)
			if i%5 == 0 {
				pre = int64(1 + (i*13)%600)
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
				d.DeviceNs = int64(dev(sh, k))
				dur += dev(sh, k)
			} else if fresh {
				dur += capFresh
			} else {
				dur += capOld
			}
			steps = append(steps, Step{StartNs: t, EndNs: t + int64(dur), PrefillTokens: sh.PrefillTokens, DecodeTokens: sh.DecodeTokens,
				Requests: sh.Requests, PrefillRequests: sh.PrefillRequests, DecodeRequests: sh.DecodeRequests, ContextTokens: ctx, Detail: d})
			t += int64(dur) + 10000
		}
		runs = append(runs, steps)
	}
	return runs
}

func TestFitMechanicsRecoversLaws(t *testing.T) {
	host := func(sh sched.Shape, _ GraphKey) float64 {
		q := sh.PrefillTokens + sh.DecodeTokens
		return 1e6 + 40e3*float64(sh.Requests) + 1500*float64(q) + 150*float64(sh.ContextTokens-q)
	}
	dev := func(_ sched.Shape, k GraphKey) float64 { return 5e6 + 1000*float64(k.KV) + 300*float64(k.Q) }
	m, err := FitMechanics(synthetic(host, dev, 60e6, 130e6), h200Graphs, nil)
	if err != nil {
		t.Fatal(err)
	}
	mc := m.Mechanics
	if m.SchemaVersion != 3 || mc.Captures == 0 || mc.Steps == 0 {
		t.Fatalf("version %d, %d captures, %d steps", m.SchemaVersion, mc.Captures, mc.Steps)
	}
	if mc.HostError.AbsRelP90 > 1e-6 || mc.DeviceError.AbsRelP90 > 1e-6 {
		t.Errorf("an exact law is not recovered: host P90 %v, device P90 %v", mc.HostError.AbsRelP90, mc.DeviceError.AbsRelP90)
	}
	sh := sched.Shape{Requests: 10, DecodeRequests: 10, DecodeTokens: 10, ContextTokens: 5010, MaxContextTokens: 700}
	k := h200Graphs.Key(sh)
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"host", mc.Host.at(mechX{sh: sh, k: k}), host(sh, k)},
		{"device", mc.Device.at(mechX{sh: sh, k: k}), dev(sh, k)},
		{"capture of a known shape", mc.Capture.at(mechX{sh: sh, k: k}), 60e6},
		{"capture of a fresh shape", mc.Capture.at(mechX{sh: sh, k: k, fresh: true}), 130e6},
	} {
		if math.Abs(tc.got-tc.want) > 1e-3*tc.want {
			t.Errorf("%s: %.0f ns, want %.0f", tc.name, tc.got, tc.want)
		}
	}
}

// A simulation pays a capture the first time a key occurs, nothing for
// keys the warm-up cached, and the cheaper capture for a shape it has run
// under another KV-length key.
func TestMechanicsSimulatesCaptures(t *testing.T) {
	m := &StepModel{SchemaVersion: 3, Mechanics: &Mechanics{
		Graphs:  h200Graphs,
		Host:    Law{Features: []string{FeatIntercept}, Coef: []float64{1e6}},
		Device:  Law{Features: []string{FeatIntercept}, Coef: []float64{20e6}},
		Capture: Law{Features: []string{FeatIntercept, FeatFreshShape}, Coef: []float64{60e6, 70e6}},
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
		t.Errorf("a known (query, KV) shape under a new KV-length key: %d ns, want 61 ms (host + old-shape capture)", got)
	}
	if got := m.StepNs(batch(20000, 2000)); got != 131e6 {
		t.Errorf("a fresh shape: %d ns, want 131 ms (host + fresh capture)", got)
	}
	if got := m.StepNs(batch(20000, 2000)); got != 21e6 {
		t.Errorf("the same key again: %d ns, want a replay", got)
	}
}

// MechanicsParts splits a recorded step into the host law and the GPU
// part the step paid: the device law when it replayed, the capture law
// (fresh or not, as recorded) when it captured; PredictStep is their sum.
func TestMechanicsParts(t *testing.T) {
	m := &StepModel{SchemaVersion: 3, Mechanics: &Mechanics{
		Graphs:  h200Graphs,
		Host:    Law{Features: []string{FeatIntercept, FeatRequests}, Coef: []float64{1e6, 1e4}},
		Device:  Law{Features: []string{FeatIntercept}, Coef: []float64{20e6}},
		Capture: Law{Features: []string{FeatIntercept, FeatFreshShape}, Coef: []float64{60e6, 70e6}},
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
