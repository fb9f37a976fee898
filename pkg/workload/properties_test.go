package workload

import (
	"math"
	"reflect"
	"testing"

	"github.com/gsim-dev/gsim/pkg/schema"
)

func ptr[T any](v T) *T { return &v }

func gen(t *testing.T, p Params) *schema.Workload {
	t.Helper()
	if p.Model == "" {
		p.Model = "m"
	}
	if p.Prefill.Dist == "" {
		p.Prefill = Lengths{Dist: Fixed, Value: ptr[int64](8)}
	}
	if p.Decode.Dist == "" {
		p.Decode = Lengths{Dist: Fixed, Value: ptr[int64](4)}
	}
	w, err := Generate(p, ".")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// gapStats returns the mean (s) and squared coefficient of variation of the
// inter-arrival gaps after the first request.
func gapStats(w *schema.Workload) (mean, cv2 float64) {
	var s, s2 float64
	n := 0
	for _, r := range w.Requests[1:] {
		g := float64(r.InterArrivalNs) / 1e9
		s += g
		s2 += g * g
		n++
	}
	mean = s / float64(n)
	v := s2/float64(n) - mean*mean
	return mean, v / (mean * mean)
}

func TestArrivalMoments(t *testing.T) {
	for _, c := range []struct {
		name       string
		arr        Arrival
		cv2, cvTol float64 // expected CV² of gaps and relative tolerance
	}{
		{"poisson", Arrival{Process: Poisson, Rate: ptr(4.0)}, 1, 0.08},
		{"gamma 1", Arrival{Process: Gamma, Rate: ptr(4.0), Burstiness: ptr(1.0)}, 1, 0.08},
		{"gamma 0.5", Arrival{Process: Gamma, Rate: ptr(4.0), Burstiness: ptr(0.5)}, 2, 0.12},
		{"gamma 2", Arrival{Process: Gamma, Rate: ptr(4.0), Burstiness: ptr(2.0)}, 0.5, 0.08},
		{"gamma 0.25 rate 10", Arrival{Process: Gamma, Rate: ptr(10.0), Burstiness: ptr(0.25)}, 4, 0.15},
	} {
		t.Run(c.name, func(t *testing.T) {
			for seed := int64(1); seed <= 3; seed++ {
				w := gen(t, Params{Seed: seed, NumRequests: 10_000, Arrival: c.arr})
				mean, cv2 := gapStats(w)
				want := 1 / *c.arr.Rate
				t.Logf("seed %d: mean gap %.5f s (want %.5f), CV² %.3f (want %.3f)", seed, mean, want, cv2, c.cv2)
				// The mean of 10k gaps has relative std sqrt(cv2/1e4) <= 2%.
				if math.Abs(mean-want)/want > 0.05 {
					t.Errorf("seed %d: mean gap %.5f s, want %.5f ± 5%%", seed, mean, want)
				}
				if math.Abs(cv2-c.cv2)/c.cv2 > c.cvTol {
					t.Errorf("seed %d: CV² %.3f, want %.3f ± %.0f%%", seed, cv2, c.cv2, 100*c.cvTol)
				}
			}
		})
	}
}

func TestConstantExact(t *testing.T) {
	for _, rate := range []float64{4, 3, 0.5} {
		w := gen(t, Params{NumRequests: 1000, Arrival: Arrival{Process: Constant, Rate: ptr(rate)}})
		for i, r := range w.Requests {
			// Rounded from the exact time, so no drift however long the run.
			if want := int64(math.Round(float64(i) * 1e9 / rate)); r.ArrivalTimeNs != want {
				t.Fatalf("rate %g: request %d at %d ns, want %d", rate, i, r.ArrivalTimeNs, want)
			}
		}
	}
}

func TestDuration(t *testing.T) {
	w := gen(t, Params{Duration: "60s", Arrival: Arrival{Process: Constant, Rate: ptr(4.0)}})
	// 0, 0.25, ..., 60.0 inclusive.
	if len(w.Requests) != 241 || w.Requests[240].ArrivalTimeNs != 60e9 {
		t.Fatalf("%d requests, last at %d", len(w.Requests), w.Requests[len(w.Requests)-1].ArrivalTimeNs)
	}
	w = gen(t, Params{Duration: "100s", Arrival: Arrival{Process: Poisson, Rate: ptr(50.0)}})
	if n := len(w.Requests); math.Abs(float64(n)-5000) > 4*math.Sqrt(5000) {
		t.Errorf("poisson 50/s for 100s gave %d requests", n)
	}
	if last := w.Requests[len(w.Requests)-1].ArrivalTimeNs; last > 100e9 {
		t.Errorf("last arrival %d after the duration", last)
	}
}

func TestAllAtOnce(t *testing.T) {
	w := gen(t, Params{NumRequests: 50, Arrival: Arrival{Process: AllAtOnce}})
	for _, r := range w.Requests {
		if r.ArrivalTimeNs != 0 || r.InterArrivalNs != 0 {
			t.Fatalf("request %+v not at 0", r)
		}
	}
}

func TestClipping(t *testing.T) {
	for _, l := range []Lengths{
		{Dist: Normal, Mean: ptr(100.0), Std: ptr(400.0), Min: ptr[int64](20), Max: ptr[int64](150)},
		{Dist: LogNormal, Mu: ptr(4.0), Sigma: ptr(2.0), Min: ptr[int64](20), Max: ptr[int64](150)},
		{Dist: LogNormal, Mean: ptr(100.0), Std: ptr(300.0), Min: ptr[int64](20), Max: ptr[int64](150)},
		{Dist: Uniform, Min: ptr[int64](20), Max: ptr[int64](150)},
		{Dist: Zipf, S: ptr(0.5), Min: ptr[int64](20), Max: ptr[int64](150)},
		{Dist: Fixed, Value: ptr[int64](500), Min: ptr[int64](20), Max: ptr[int64](150)},
		{Dist: Normal, Mean: ptr(-50.0), Std: ptr(10.0)}, // min defaults to 1
	} {
		w := gen(t, Params{NumRequests: 5000, Arrival: Arrival{Process: AllAtOnce}, Prefill: l})
		lo, hi := l.bounds()
		seen := map[int64]bool{}
		for _, r := range w.Requests {
			if r.NumPrefillTokens < lo || r.NumPrefillTokens > hi {
				t.Fatalf("%s: %d outside [%d, %d]", l.Dist, r.NumPrefillTokens, lo, hi)
			}
			seen[r.NumPrefillTokens] = true
		}
		// The wide distributions must actually reach both bounds, or the
		// test above proves nothing about clipping.
		if l.Dist == Normal && l.Max != nil && (!seen[lo] || !seen[hi]) {
			t.Errorf("%s never hit a bound", l.Dist)
		}
	}
}

func TestLengthMoments(t *testing.T) {
	for _, c := range []struct {
		l         Lengths
		mean, std float64
	}{
		{Lengths{Dist: Normal, Mean: ptr(500.0), Std: ptr(50.0)}, 500, 50},
		{Lengths{Dist: LogNormal, Mean: ptr(500.0), Std: ptr(200.0)}, 500, 200},
		{Lengths{Dist: LogNormal, Mu: ptr(6.0), Sigma: ptr(0.3)}, math.Exp(6 + 0.045), math.Exp(6+0.045) * math.Sqrt(math.Exp(0.09)-1)},
		{Lengths{Dist: Uniform, Min: ptr[int64](100), Max: ptr[int64](300)}, 200, math.Sqrt((201*201 - 1) / 12.0)},
	} {
		w := gen(t, Params{NumRequests: 20_000, Arrival: Arrival{Process: AllAtOnce}, Prefill: c.l})
		var s, s2 float64
		for _, r := range w.Requests {
			x := float64(r.NumPrefillTokens)
			s += x
			s2 += x * x
		}
		n := float64(len(w.Requests))
		mean := s / n
		std := math.Sqrt(s2/n - mean*mean)
		if math.Abs(mean-c.mean)/c.mean > 0.02 || math.Abs(std-c.std)/c.std > 0.05 {
			t.Errorf("%s: mean %.1f std %.1f, want %.1f and %.1f", c.l.Dist, mean, std, c.mean, c.std)
		}
	}
}

func TestZipf(t *testing.T) {
	l := Lengths{Dist: Zipf, S: ptr(1.5), Min: ptr[int64](10), Max: ptr[int64](1000)}
	w := gen(t, Params{NumRequests: 50_000, Arrival: Arrival{Process: AllAtOnce}, Prefill: l})
	count := map[int64]int{}
	for _, r := range w.Requests {
		if r.NumPrefillTokens < 10 || r.NumPrefillTokens > 1000 {
			t.Fatalf("%d outside [10, 1000]", r.NumPrefillTokens)
		}
		count[r.NumPrefillTokens]++
	}
	// P(min)/P(min+1) = 2^s.
	if ratio := float64(count[10]) / float64(count[11]); math.Abs(ratio-math.Pow(2, 1.5))/math.Pow(2, 1.5) > 0.05 {
		t.Errorf("P(10)/P(11) = %.3f, want %.3f", ratio, math.Pow(2, 1.5))
	}
}

func TestEmpirical(t *testing.T) {
	type pair struct{ p, d int64 }
	rows := map[pair]bool{}
	tab, err := readTable("testdata/vidur_trace.csv", quoter{})
	if err != nil {
		t.Fatal(err)
	}
	pre, dec := tab.cols["num_prefill_tokens"], tab.cols["num_decode_tokens"]
	for i := range pre {
		rows[pair{pre[i], dec[i]}] = true
	}
	joint := gen(t, Params{NumRequests: 2000, Arrival: Arrival{Process: AllAtOnce},
		Prefill: Lengths{Dist: Empirical, Path: "testdata/vidur_trace.csv"},
		Decode:  Lengths{Dist: Empirical, Path: "testdata/vidur_trace.csv"}})
	for _, r := range joint.Requests {
		if !rows[pair{r.NumPrefillTokens, r.NumDecodeTokens}] {
			t.Fatalf("joint draw (%d, %d) is not a row of the file", r.NumPrefillTokens, r.NumDecodeTokens)
		}
	}
	// Different files (or dists): independent draws, each a value of its column.
	indep := gen(t, Params{NumRequests: 2000, Arrival: Arrival{Process: AllAtOnce},
		Prefill: Lengths{Dist: Empirical, Path: "testdata/vidur_trace.csv"},
		Decode:  Lengths{Dist: Empirical, Path: "testdata/lengths.jsonl"}})
	inPre := map[int64]bool{}
	for _, v := range pre {
		inPre[v] = true
	}
	notRow := 0
	for _, r := range indep.Requests {
		if !inPre[r.NumPrefillTokens] || r.NumDecodeTokens%5 != 0 || r.NumDecodeTokens > 20 {
			t.Fatalf("draw (%d, %d) not from the files", r.NumPrefillTokens, r.NumDecodeTokens)
		}
		if !rows[pair{r.NumPrefillTokens, r.NumDecodeTokens}] {
			notRow++
		}
	}
	if notRow == 0 {
		t.Error("independent draws all look like joint rows")
	}
	// A named column.
	w := gen(t, Params{NumRequests: 100, Arrival: Arrival{Process: AllAtOnce},
		Prefill: Lengths{Dist: Empirical, Path: "testdata/lengths.jsonl", Column: "num_decode_tokens"}})
	for _, r := range w.Requests {
		if r.NumPrefillTokens%5 != 0 || r.NumPrefillTokens > 20 {
			t.Fatalf("column draw %d", r.NumPrefillTokens)
		}
	}
}

func TestMaxTotalTokens(t *testing.T) {
	w := gen(t, Params{NumRequests: 5000, Arrival: Arrival{Process: AllAtOnce}, MaxTotalTokens: 300,
		Prefill: Lengths{Dist: Uniform, Min: ptr[int64](1), Max: ptr[int64](400)},
		Decode:  Lengths{Dist: Uniform, Min: ptr[int64](1), Max: ptr[int64](200)}})
	shrunk := 0
	for _, r := range w.Requests {
		if r.NumPrefillTokens+r.NumDecodeTokens > 300 || r.NumDecodeTokens < 1 || r.NumPrefillTokens < 1 {
			t.Fatalf("request %+v breaks max_total_tokens 300", r)
		}
		if r.NumPrefillTokens+r.NumDecodeTokens == 300 {
			shrunk++
		}
	}
	if shrunk == 0 {
		t.Error("no request reached the cap; the test does not exercise clipping")
	}
	// Prefill alone over the cap: decode keeps 1 token, prefill gives way.
	w = gen(t, Params{NumRequests: 3, Arrival: Arrival{Process: AllAtOnce}, MaxTotalTokens: 100,
		Prefill: Lengths{Dist: Fixed, Value: ptr[int64](500)}})
	if r := w.Requests[0]; r.NumPrefillTokens != 99 || r.NumDecodeTokens != 1 {
		t.Fatalf("got %+v, want prefill 99 decode 1", r)
	}
}

func TestDeterminismAndStreams(t *testing.T) {
	p := Params{Seed: 5, NumRequests: 500, Arrival: Arrival{Process: Gamma, Rate: ptr(2.0), Burstiness: ptr(0.7)},
		Prefill: Lengths{Dist: LogNormal, Mean: ptr(300.0), Std: ptr(100.0)},
		Decode:  Lengths{Dist: Zipf, S: ptr(1.0), Min: ptr[int64](1), Max: ptr[int64](512)}}
	a, b := gen(t, p), gen(t, p)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same params, different workloads")
	}
	// A rate change scales the schedule and keeps every length.
	q := p
	q.Arrival.Rate = ptr(8.0)
	c := gen(t, q)
	for i := range a.Requests {
		ra, rc := a.Requests[i], c.Requests[i]
		if ra.NumPrefillTokens != rc.NumPrefillTokens || ra.NumDecodeTokens != rc.NumDecodeTokens {
			t.Fatalf("request %d lengths changed with the rate", i)
		}
		if d := ra.ArrivalTimeNs - 4*rc.ArrivalTimeNs; d < -4 || d > 4 {
			t.Fatalf("request %d: %d ns at rate 2 vs %d ns at rate 8, want 4x", i, ra.ArrivalTimeNs, rc.ArrivalTimeNs)
		}
	}
	// A length change keeps arrivals.
	q = p
	q.Prefill = Lengths{Dist: Fixed, Value: ptr[int64](10)}
	d := gen(t, q)
	for i := range a.Requests {
		if a.Requests[i].ArrivalTimeNs != d.Requests[i].ArrivalTimeNs {
			t.Fatalf("request %d arrival changed with the prefill distribution", i)
		}
	}
	// A different seed changes things.
	q = p
	q.Seed = 6
	if reflect.DeepEqual(a.Requests, gen(t, q).Requests) {
		t.Fatal("seed had no effect")
	}
}

func TestSyntheticPrompts(t *testing.T) {
	w := gen(t, Params{NumRequests: 30, Arrival: Arrival{Process: AllAtOnce}, Prompts: PromptsSynthetic,
		Prefill: Lengths{Dist: Uniform, Min: ptr[int64](1), Max: ptr[int64](50)}})
	if len(w.Prompts) != 30 {
		t.Fatalf("%d prompts", len(w.Prompts))
	}
	for i, p := range w.Prompts {
		r := w.Requests[i]
		if p.ID != r.PromptID || int64(len(splitWords(p.Text))) != r.NumPrefillTokens {
			t.Fatalf("prompt %d has %d words for %d prefill tokens", p.ID, len(splitWords(p.Text)), r.NumPrefillTokens)
		}
	}
	if w := gen(t, Params{NumRequests: 3, Arrival: Arrival{Process: AllAtOnce}}); w.Prompts != nil {
		t.Fatal("prompts without asking")
	}
}

func splitWords(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ' ' {
			if start >= 0 {
				out = append(out, s[start:i])
			}
			start = -1
		} else if start < 0 {
			start = i
		}
	}
	return out
}

// Every process with every distribution yields a folder the schema accepts,
// within the bounds asked for.
func TestAllCombinationsValid(t *testing.T) {
	arrivals := []Arrival{
		{Process: Poisson, Rate: ptr(3.0)},
		{Process: Gamma, Rate: ptr(3.0), Burstiness: ptr(0.3)},
		{Process: Constant, Rate: ptr(3.0)},
		{Process: AllAtOnce},
		{Process: Trace, Path: "testdata/vidur_trace.csv"},
	}
	dists := []Lengths{
		{Dist: Fixed, Value: ptr[int64](40)},
		{Dist: Uniform, Min: ptr[int64](5), Max: ptr[int64](60)},
		{Dist: Normal, Mean: ptr(30.0), Std: ptr(30.0), Max: ptr[int64](60)},
		{Dist: LogNormal, Mean: ptr(30.0), Std: ptr(50.0), Max: ptr[int64](60)},
		{Dist: Zipf, S: ptr(0.9), Min: ptr[int64](5), Max: ptr[int64](60)},
		{Dist: Empirical, Path: "testdata/lengths.jsonl", Column: "num_decode_tokens"},
	}
	for _, a := range arrivals {
		for _, d := range dists {
			p := Params{Model: "m", Seed: 11, NumRequests: 20, Arrival: a, Prefill: d, Decode: d, MaxTotalTokens: 70}
			w := gen(t, p)
			dir := t.TempDir()
			if err := schema.WriteWorkload(dir, w); err != nil {
				t.Fatal(err)
			}
			if err := schema.ValidateWorkloadDir(dir); err != nil {
				t.Fatalf("%s/%s: %v", a.Process, d.Dist, err)
			}
			lo, hi := d.bounds()
			for _, r := range w.Requests {
				if r.NumPrefillTokens+r.NumDecodeTokens > 70 || r.NumDecodeTokens < lo || r.NumDecodeTokens > hi {
					t.Fatalf("%s/%s: %+v out of bounds", a.Process, d.Dist, r)
				}
			}
		}
	}
}
