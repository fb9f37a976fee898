package report

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/wcharczuk/go-chart/v2"
)

// hangLo, hangHi are one float step apart: the tick loop of the first axis
// code never advanced over such a range and allocated until gsim died.
var hangLo, hangHi = 6.16504, math.Nextafter(6.16504, 10)

// edgeRanges are the ranges every plotting path must draw: degenerate,
// equal, subnormal, huge, mixed signs, and non-finite.
var edgeRanges = [][2]float64{
	{hangLo, hangHi},
	{6.11847, 6.11847},
	{0, 0},
	{-3, -3},
	{0, math.SmallestNonzeroFloat64},
	{-math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64},
	{math.SmallestNonzeroFloat64, 1e-300},
	{math.SmallestNonzeroFloat64, math.MaxFloat64},
	{-math.MaxFloat64, math.MaxFloat64},
	{math.MaxFloat64, math.MaxFloat64},
	{math.Nextafter(math.MaxFloat64, 0), math.MaxFloat64},
	{1e20, 1e20 + 1e6},
	{-1e-9, 1e-9},
	{0.5, 2000},
	{45, 20},
	{math.NaN(), 1},
	{math.Inf(-1), math.Inf(1)},
}

// terminates fails the test if f has not returned within a bound far above
// any real duration (f takes microseconds): it detects a hang, not slowness.
func terminates(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s never returned", what)
	}
}

func checkAxis(t testing.TB, lo, hi float64, fromZero bool) {
	t.Helper()
	var a axis
	terminates(t, "newAxis", func() { a = newAxis(lo, hi, fromZero) })
	if !finite(a.lo) || !finite(a.hi) || !(a.lo < a.hi) {
		t.Fatalf("newAxis(%v, %v): axis range [%v, %v]", lo, hi, a.lo, a.hi)
	}
	if len(a.ticks) < 2 || len(a.ticks) > maxTicks+1 {
		t.Fatalf("newAxis(%v, %v): %d ticks", lo, hi, len(a.ticks))
	}
	seen := map[string]bool{}
	for i, tk := range a.ticks {
		if !finite(tk.Value) || tk.Value < a.lo || tk.Value > a.hi || (i > 0 && tk.Value <= a.ticks[i-1].Value) {
			t.Fatalf("newAxis(%v, %v): tick %d = %+v of %v..%v", lo, hi, i, tk, a.lo, a.hi)
		}
		if tk.Label != "" && seen[tk.Label] {
			t.Fatalf("newAxis(%v, %v): label %q twice: %v", lo, hi, tk.Label, tickLabels(a))
		}
		seen[tk.Label] = true
	}
	if a.ticks[0].Value != a.lo || a.ticks[len(a.ticks)-1].Value != a.hi {
		t.Fatalf("newAxis(%v, %v): ticks %v do not span the axis %v..%v (go-chart takes its range from them)", lo, hi, a.ticks, a.lo, a.hi)
	}
	for _, v := range []float64{lo, hi} {
		if !finite(v) {
			continue
		}
		if p := a.pos(v); !finite(p) || p < a.lo-1e-9 || p > a.hi+1e-9 {
			t.Fatalf("newAxis(%v, %v): pos(%v) = %v outside %v..%v", lo, hi, v, p, a.lo, a.hi)
		}
	}
}

func TestAxisEdgeRanges(t *testing.T) {
	for _, r := range edgeRanges {
		checkAxis(t, r[0], r[1], false)
		checkAxis(t, r[0], r[1], true)
	}
}

func FuzzAxis(f *testing.F) {
	for _, r := range edgeRanges {
		f.Add(r[0], r[1], false)
		f.Add(r[0], r[1], true)
	}
	f.Fuzz(func(t *testing.T, lo, hi float64, fromZero bool) {
		checkAxis(t, lo, hi, fromZero)
	})
}

// floats decodes b as little-endian float64s (a fuzzer's way to make any
// values, NaN and infinities included).
func floats(b []byte) []float64 {
	out := make([]float64, 0, len(b)/8)
	for ; len(b) >= 8; b = b[8:] {
		out = append(out, math.Float64frombits(binary.LittleEndian.Uint64(b)))
	}
	return out
}

func floatBytes(v ...float64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	}
	return b
}

func checkPNG(t testing.TB, what string, render func(*bytes.Buffer) error) {
	t.Helper()
	var buf bytes.Buffer
	var err error
	terminates(t, what, func() { err = render(&buf) })
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", what, err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 540 {
		t.Fatalf("%s: image %v", what, b)
	}
}

// cdfSeeds are samples (each split in two lines at its middle) that
// every figure must draw: each edge range, the first being the hang. Each
// is a PNG render; under -race, whose renders are about 20 times slower
// and whose point is concurrency (the writers are single-goroutine), only
// the first few run, and the plain build runs them all.
func cdfSeeds() [][]byte {
	var seeds [][]byte
	for _, r := range edgeRanges {
		seeds = append(seeds, floatBytes(r[0], r[0], r[1]))
	}
	seeds = append(seeds,
		floatBytes(7),
		floatBytes(0, 0, 0, math.NaN(), 5),
		nil,
	)
	if raceBuild {
		seeds = seeds[:3]
	}
	return seeds
}

func cdfLines(b []byte) []CDFLine {
	v := floats(b)
	a, c := slices.Clone(v[:len(v)/2]), slices.Clone(v[len(v)/2:])
	slices.Sort(a)
	slices.Sort(c)
	return []CDFLine{{Label: "real", Sorted: a}, {Label: "sim", Sorted: c}}
}

func FuzzWriteCDF(f *testing.F) {
	for _, s := range cdfSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		lines := cdfLines(b)
		checkPNG(t, "WriteCDF", func(w *bytes.Buffer) error {
			return WriteCDF(w, "fuzz", analysis.Info(analysis.TTFT), lines)
		})
	})
}

func FuzzWriteXY(f *testing.F) {
	for i, s := range cdfSeeds() {
		f.Add(s, []float64{50, math.NaN()}[i%2], i%3 == 0)
	}
	f.Add(floatBytes(hangLo, 30, hangHi, 31), hangLo, false)
	f.Add(floatBytes(hangLo, hangLo, hangHi, hangHi), math.NaN(), false)
	f.Fuzz(func(t *testing.T, b []byte, slo float64, categorical bool) {
		v := floats(b)
		// Pairs (x, y), alternating between two lines.
		lines := []XYLine{{Label: "real"}, {Label: "sim"}}
		for i := 0; i+1 < len(v); i += 2 {
			l := &lines[(i/2)%2]
			l.X, l.Y = append(l.X, v[i]), append(l.Y, v[i+1])
		}
		var ticks []chart.Tick
		if categorical {
			for _, l := range lines {
				for _, x := range l.X {
					ticks = append(ticks, chart.Tick{Value: x, Label: formatNum(x)})
				}
			}
			if ticks == nil {
				ticks = []chart.Tick{}
			}
		}
		checkPNG(t, "WriteXY", func(w *bytes.Buffer) error {
			return WriteXY(w, "fuzz", "rate", ticks, analysis.Info(analysis.TTFT), "P50", lines, slo)
		})
	})
}

func TestNonFiniteValuesAreNoted(t *testing.T) {
	lines, dropped := finiteLines([]CDFLine{{Label: "real", Sorted: []float64{math.NaN(), 1, 2, math.Inf(1)}}, {Label: "sim", Sorted: []float64{3}}})
	if !slices.Equal(lines[0].Sorted, []float64{1, 2}) || dropped[0] != 2 || dropped[1] != 0 || len(lines[1].Sorted) != 1 {
		t.Errorf("finiteLines = %v, %v", lines, dropped)
	}
}
