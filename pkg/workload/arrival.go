package workload

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
)

// arrivals returns arrival times in ns (non-decreasing, first at 0). n > 0
// asks for exactly n; otherwise every arrival up to durNs is kept.
//
// The first request arrives at 0 and each gap is drawn before the next
// request, as vLLM's benchmark client does. Gaps are unit-mean draws divided
// by the rate, and times are rounded from the running sum in seconds, so the
// same seed gives the same schedule shape at every rate (a rate sweep differs
// only in scale) and rounding never drifts.
func arrivals(a Arrival, r *rand.Rand, n int, durNs int64, baseDir string) ([]int64, error) {
	if a.Process == Trace {
		path := resolve(baseDir, a.Path)
		return traceArrivals(path, n, durNs, quoterFor(baseDir, path))
	}
	var next func() float64 // the next unit-mean gap
	switch a.Process {
	case Poisson:
		next = r.ExpFloat64
	case Gamma:
		k := *a.Burstiness
		next = func() float64 { return gammaSample(r, k) / k }
	case Constant:
		next = func() float64 { return 1 }
	case AllAtOnce:
		return make([]int64, n), nil
	default:
		return nil, fmt.Errorf("unknown arrival process %q", a.Process)
	}
	rate := *a.Rate
	var out []int64
	if n > 0 {
		out = make([]int64, 0, n)
	}
	var units float64 // sum of unit-mean gaps so far
	for i := 0; ; i++ {
		if i > 0 {
			if a.Process == Constant {
				units = float64(i)
			} else {
				units += next()
			}
		}
		t := toNs(units / rate)
		if n > 0 && i >= n || n <= 0 && t > durNs {
			break
		}
		if len(out) >= maxRequest {
			return nil, fmt.Errorf("more than %d requests; shorten duration or lower the rate", maxRequest)
		}
		out = append(out, t)
	}
	return out, nil
}

func toNs(sec float64) int64 {
	ns := math.Round(float64(sec * 1e9))
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(ns)
}

// gammaSample draws Gamma(k, 1) by Marsaglia and Tsang's method; for k < 1 it
// boosts a Gamma(k+1) draw by U^(1/k).
func gammaSample(r *rand.Rand, k float64) float64 {
	if k < 1 {
		u := r.Float64()
		for u == 0 {
			u = r.Float64()
		}
		return gammaSample(r, k+1) * math.Pow(u, 1/k)
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + float64(c*x)
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		x2 := float64(x * x)
		if u < 1-float64(0.0331*float64(x2*x2)) {
			return float64(d * v)
		}
		if u > 0 && math.Log(u) < float64(0.5*x2)+float64(d*(1-v+math.Log(v))) {
			return float64(d * v)
		}
	}
}

// traceArrivals reads arrival times from a CSV with column arrival_time_ns
// (integers) or arrived_at (seconds, as Vidur's traces have). Times are
// shifted so the first is 0, since traces are often recorded against a wall
// clock.
func traceArrivals(path string, n int, durNs int64, q quoter) ([]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("arrival trace: %w", err)
	}
	cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte{0xEF, 0xBB, 0xBF})))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: reading header: %w", path, err)
	}
	header = slices.Clone(header) // the reader reuses its record
	col, inNs := -1, false
	for i, h := range header {
		switch strings.TrimSpace(h) {
		case "arrival_time_ns":
			col, inNs = i, true
		case "arrived_at":
			if col < 0 {
				col = i
			}
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("%s: no column arrival_time_ns or arrived_at in its header (%s); is this the right file?", path, q.columns(header))
	}
	var out []int64
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvRowError(path, len(header), err)
		}
		f := strings.TrimSpace(rec[col])
		var t int64
		if inNs {
			t, err = strconv.ParseInt(f, 10, 64)
		} else {
			var s float64
			s, err = strconv.ParseFloat(f, 64)
			if err == nil && (math.IsNaN(s) || math.IsInf(s, 0)) {
				err = fmt.Errorf("not finite")
			}
			t = toNs(s)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: row %d (line %d), column %s: %s is not a time", path, row, row+1, header[col], q.value(f))
		}
		if len(out) > 0 && t < out[len(out)-1] {
			return nil, fmt.Errorf("%s: row %d (line %d), column %s: %s is before the previous arrival (expected non-decreasing times; sort the trace)", path, row, row+1, header[col], f)
		}
		out = append(out, t)
		if len(out) > maxRequest {
			return nil, fmt.Errorf("%s: more than %d rows", path, maxRequest)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	t0 := out[0]
	for i := range out {
		out[i] -= t0
	}
	switch {
	case n > 0:
		if len(out) < n {
			return nil, fmt.Errorf("%s has %d arrivals, num_requests asks for %d", path, len(out), n)
		}
		out = out[:n]
	case durNs > 0:
		end, _ := slices.BinarySearch(out, durNs+1)
		out = out[:end]
	}
	return out, nil
}
