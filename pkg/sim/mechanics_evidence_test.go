package sim

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/predict"
)

// TestMechanicsEvidenceH200 prints, from the training family's step logs
// only (never a held-out one), the evidence behind each part of the
// mechanics form, and checks it still holds:
//
//   - the device time of replayed steps is flat in the padded query up to
//     1024 tokens and steps up above (the attention kernel's second wave),
//     where a query × KV law rises smoothly;
//   - a graph's first replay spends ~2.5 ms more in the replay call and as
//     much less in the device wait, so the compute phase (call + wait) is
//     what the device law must explain;
//   - a capture costs the device law's time for its key plus an overhead
//     that does not grow with the query (for fresh and known shapes);
//   - offered a cost per prefill request (which the code does not have),
//     the host law puts (nearly) nothing on it.
//
// With the GPU profile recorded in testdata (the H100's), it also checks
// the profile's packed attention: flat from 512 to 1024 query tokens, and
// 1024, 2048 and 4096 on one line in the number of 1024-token waves.
func TestMechanicsEvidenceH200(t *testing.T) {
	fams := h200Families(t)
	fitOut, _ := h200Fit(t, fams)
	model, err := predict.ReadStepModel(filepath.Join(fitOut, StepModelFile))
	if err != nil {
		t.Fatal(err)
	}
	type obs struct {
		q, kv                  int64
		compute, launch, wait  float64 // ms
		first                  bool
		capture, fresh         bool
		overhead, lawHost, dur float64
	}
	var all []obs
	for _, c := range fams[0].cells {
		run := c.runs[0]
		steps, err := schema.ReadStepMetrics(filepath.Join(run, schema.StepMetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		detail, err := schema.ReadStepDetail(filepath.Join(run, schema.StepDetailFile))
		if err != nil {
			t.Fatal(err)
		}
		rm, err := schema.ReadRunMeta(filepath.Join(run, schema.RunMetaFile))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[[2]int64]bool{{8192, 262144}: true}
		for _, k := range rm.Extra["step_detail"].(map[string]any)["graphs_at_start"].([]any) {
			var q, kv, sk int64
			fmt.Sscanf(k.(string), "%dx%dx%d", &q, &kv, &sk)
			seen[[2]int64{q, kv}] = true
		}
		replayed := map[string]bool{}
		for i, m := range steps {
			d := detail[i]
			o := obs{q: d.QPadded, kv: d.KVPadded, compute: float64(d.SyncEndNs-d.ComputeStartNs) / 1e6,
				launch: float64(d.ComputeEndNs-d.ComputeStartNs) / 1e6, wait: float64(d.SyncEndNs-d.ComputeEndNs) / 1e6,
				dur: float64(m.EndNs-m.StartNs) / 1e6}
			shape := [2]int64{d.QPadded, d.KVPadded}
			st := predict.Step{PrefillTokens: m.NumPrefillTokens, DecodeTokens: m.NumDecodeTokens, Requests: m.NumRequests,
				PrefillRequests: m.NumPrefillRequests, DecodeRequests: m.NumDecodeRequests, ContextTokens: m.NumContextTokens,
				Detail: &predict.StepDetail{Key: predict.GraphKey{Q: d.QPadded, KV: d.KVPadded, SeqK: d.SeqlenKPadded}, Hit: 1}}
			host, dev := model.MechanicsParts(st)
			o.lawHost = host / 1e6
			if d.GraphHit == 0 {
				o.capture, o.fresh = true, !seen[shape]
				o.overhead = o.dur - (host+dev)/1e6
			} else {
				o.first = !replayed[d.GraphKey]
				replayed[d.GraphKey] = true
				o.overhead = o.compute - dev/1e6 // the device law's residual
			}
			seen[shape] = true
			all = append(all, o)
		}
	}
	med := func(f func(obs) bool, v func(obs) float64) (float64, int) {
		var xs []float64
		for _, o := range all {
			if f(o) {
				xs = append(xs, v(o))
			}
		}
		if len(xs) == 0 {
			return math.NaN(), 0
		}
		slices.Sort(xs)
		return xs[len(xs)/2], len(xs)
	}
	var b strings.Builder
	// 1. Waves.
	b.WriteString("Replayed steps' compute phase (ms, median) by padded query, at padded KV 16384 and 32768:\n\n| padded query | KV 16384 | KV 32768 |\n| --- | ---: | ---: |\n")
	bands := [][2]int64{{64, 64}, {128, 512}, {576, 1024}, {1088, 2048}}
	var at16 []float64
	for _, bd := range bands {
		row := fmt.Sprintf("| %d-%d |", bd[0], bd[1])
		for _, kv := range []int64{16384, 32768} {
			v, n := med(func(o obs) bool { return !o.capture && o.kv == kv && o.q >= bd[0] && o.q <= bd[1] }, func(o obs) float64 { return o.compute })
			row += fmt.Sprintf(" %.1f (%d) |", v, n)
			if kv == 16384 {
				at16 = append(at16, v)
			}
		}
		b.WriteString(row + "\n")
	}
	if at16[2]/at16[0] > 1.2 || at16[3]/at16[2] < 1.4 {
		t.Errorf("device time at KV 16384: %.1f ms at 64 queries, %.1f at 576-1024, %.1f at 1088-2048; want flat up to 1024 and a step above", at16[0], at16[2], at16[3])
	}
	// 2. First replays.
	lf, nf := med(func(o obs) bool { return !o.capture && o.first }, func(o obs) float64 { return o.launch })
	lo, _ := med(func(o obs) bool { return !o.capture && !o.first }, func(o obs) float64 { return o.launch })
	rf, _ := med(func(o obs) bool { return !o.capture && o.first }, func(o obs) float64 { return o.overhead / o.compute })
	ro, no := med(func(o obs) bool { return !o.capture && !o.first }, func(o obs) float64 { return o.overhead / o.compute })
	fmt.Fprintf(&b, "\nFirst replays of a graph (%d): replay call %.2f ms (median), later replays (%d) %.2f ms; compute phase against the device law %+.2f%% and %+.2f%%.\n",
		nf, lf, no, lo, 100*rf, 100*ro)
	if lf-lo < 1.5 || math.Abs(rf) > 0.02 {
		t.Errorf("first replays: call %.2f ms against %.2f, compute phase %+.2f%% off the device law; want a ~2.5 ms longer call and no net cost", lf, lo, 100*rf)
	}
	// 3. Capture overhead by query.
	b.WriteString("\nCapture overhead over host + device laws (ms, median) by padded query:\n\n| padded query | fresh shape | known shape |\n| --- | ---: | ---: |\n")
	var fresh []float64
	for _, bd := range [][2]int64{{64, 512}, {576, 1024}, {1088, 2048}, {2112, 8192}} {
		vf, nf := med(func(o obs) bool { return o.capture && o.fresh && o.q >= bd[0] && o.q <= bd[1] }, func(o obs) float64 { return o.overhead })
		vk, nk := med(func(o obs) bool { return o.capture && !o.fresh && o.q >= bd[0] && o.q <= bd[1] }, func(o obs) float64 { return o.overhead })
		fmt.Fprintf(&b, "| %d-%d | %.0f (%d) | %.0f (%d) |\n", bd[0], bd[1], vf, nf, vk, nk)
		fresh = append(fresh, vf)
	}
	if lo, hi := slices.Min(fresh), slices.Max(fresh); hi > 1.3*lo {
		t.Errorf("fresh capture overhead by query band %v ms: want it flat in the query", fresh)
	}
	// 4. The profile's packed attention (the H100's, in testdata).
	prof := filepath.Join(repoRoot(t), "testdata", "profile", "h100", "extra_ops.csv")
	if att, err := packedAttention(prof); err != nil {
		t.Errorf("%s: %v", prof, err)
	} else {
		b.WriteString("\nProfiled packed attention per layer (ms, median; H100 profile in testdata/profile/h100):\n\n| query tokens | KV 16384 | KV 32768 | KV 65536 |\n| --- | ---: | ---: | ---: |\n")
		for _, q := range []int64{512, 1024, 2048, 4096} {
			fmt.Fprintf(&b, "| %d | %.3f | %.3f | %.3f |\n", q, att[[2]int64{q, 16384}], att[[2]int64{q, 32768}], att[[2]int64{q, 65536}])
		}
		for _, k := range []int64{16384, 32768, 65536} {
			a1, a2, a4 := att[[2]int64{1024, k}], att[[2]int64{2048, k}], att[[2]int64{4096, k}]
			if line := a2 + 2*(a2-a1); math.Abs(a4/line-1) > 0.03 || att[[2]int64{512, k}]/a1 < 0.9 {
				t.Errorf("profiled attention at KV %d: %.3f, %.3f, %.3f ms at 1024, 2048, 4096 queries (4 waves on the line: %.3f); 512: %.3f", k, a1, a2, a4, line, att[[2]int64{512, k}])
			}
		}
	}
	// 5. No cost per prefill request: offered to the host law, it fits to
	// (nearly) zero once the first replays are in the compute phase (fit
	// version 3, on the wait, put 0.57 ms on each).
	saved := predict.HostFeatures
	predict.HostFeatures = append(slices.Clone(saved), predict.FeatPrefillRequests)
	withPrefill, _ := h200Fit(t, fams)
	predict.HostFeatures = saved
	pm, err := predict.ReadStepModel(filepath.Join(withPrefill, StepModelFile))
	if err != nil {
		t.Fatal(err)
	}
	perPrefill := 0.0
	for i, f := range pm.Mechanics.Host.Features {
		if f == predict.FeatPrefillRequests {
			perPrefill = pm.Mechanics.Host.Coef[i]
		}
	}
	fmt.Fprintf(&b, "\nHost law given a per-prefill-request cost: %.1f µs per prefill request.\n", perPrefill/1e3)
	if perPrefill > 50e3 {
		t.Errorf("the host law puts %.0f µs on each prefill request; want (nearly) none", perPrefill/1e3)
	}
	t.Logf("evidence from the training family's step logs:\n%s", b.String())
}

// packedAttention reads the attn_packed rows (median ms) of a profile's
// extra_ops.csv, keyed by (query tokens, KV tokens).
func packedAttention(path string) (map[[2]int64]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[[2]int64]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), ",")
		if len(p) < 5 || p[0] != "attn_packed" {
			continue
		}
		q, e1 := strconv.ParseInt(p[1], 10, 64)
		k, e2 := strconv.ParseInt(p[2], 10, 64)
		v, e3 := strconv.ParseFloat(p[4], 64)
		if e1 != nil || e2 != nil || e3 != nil {
			return nil, fmt.Errorf("bad attn_packed row %q", sc.Text())
		}
		out[[2]int64{q, k}] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no attn_packed rows")
	}
	return out, sc.Err()
}
