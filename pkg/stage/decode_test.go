package stage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/internal/plainjson"
)

// viaJSON is DecodeParams without the direct path: what every decode
// must agree with.
func viaJSON(params map[string]any, out any) error {
	b, ok := plainjson.Marshal(params)
	if !ok {
		var err error
		if b, err = json.Marshal(params); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

type decInner struct {
	Rate  float64 `json:"rate"`
	Count int     `json:"count"`
	Name  string  `json:"name,omitempty"`
}

type decCustom struct{ v string }

func (c *decCustom) UnmarshalJSON(b []byte) error { c.v = "custom:" + string(b); return nil }

type decText string

func (t *decText) UnmarshalText(b []byte) error { *t = decText("text:" + string(b)); return nil }

type decEmbedded struct {
	decInner
	Extra string `json:"extra"`
}

// decAll has a field of every shape kinds' params use, and of the shapes
// the direct path must leave to encoding/json.
type decAll struct {
	I        int               `json:"i"`
	I8       int8              `json:"i8"`
	I64      int64             `json:"i64"`
	U        uint              `json:"u"`
	U16      uint16            `json:"u16"`
	F        float64           `json:"f"`
	F32      float32           `json:"f32"`
	B        bool              `json:"b"`
	S        string            `json:"s"`
	NoTag    string            // matched by its Go name
	Skip     string            `json:"-"`
	Dash     string            `json:"-,"`
	Quoted   int               `json:"quoted,string"`
	Ptr      *decInner         `json:"ptr"`
	PI       *int              `json:"pi"`
	In       decInner          `json:"in"`
	List     []decInner        `json:"list"`
	Strs     []string          `json:"strs"`
	Bytes    []byte            `json:"bytes"`
	Arr      [2]int            `json:"arr"`
	M        map[string]any    `json:"m"`
	MI       map[string]int    `json:"mi"`
	MS       map[string]string `json:"ms"`
	Any      any               `json:"any"`
	Stringer fmt.Stringer      `json:"stringer"`
	Custom   decCustom         `json:"custom"`
	Text     decText           `json:"text"`
	Num      json.Number       `json:"num"`
	Raw      json.RawMessage   `json:"raw"`
	hidden   int
}

var decKeys = []string{"i", "i8", "i64", "u", "u16", "f", "f32", "b", "s", "NoTag", "notag", "Skip", "-", "quoted",
	"ptr", "pi", "in", "list", "strs", "bytes", "arr", "m", "mi", "ms", "any", "stringer", "custom", "text", "num", "raw",
	"hidden", "I", "unknown", "rate", "count", "name", "extra"}

func randValue(r *rand.Rand, depth int) any {
	switch r.IntN(14) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return []string{"", "x", "echo $A > o.txt", "a<b>&", "\xff\xfe", "é", "1", "true"}[r.IntN(8)]
	case 3:
		return []int{0, 1, -1, 127, 128, 255, 256, -129, 1 << 40, math.MaxInt64, math.MinInt64}[r.IntN(11)]
	case 4:
		return int64([]int{0, 3, -7, 1 << 33}[r.IntN(4)])
	case 5, 6:
		return []float64{0, 1, -1, 0.5, 4.0, 1e17, 1e18, 9.3e18, 1e20, 1e21, 1e300, -0.0, 3.4e38, 1e-7,
			math.NaN(), math.Inf(1), 255, 256, 65535, 65536, 2.5}[r.IntN(21)]
	case 7, 8, 9:
		if depth > 2 {
			return "leaf"
		}
		n := r.IntN(4)
		l := make([]any, n)
		for i := range l {
			l[i] = randValue(r, depth+1)
		}
		return l
	default:
		if depth > 2 {
			return 1
		}
		return randMap(r, depth+1)
	}
}

func randMap(r *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for n := r.IntN(4); n > 0; n-- {
		m[decKeys[r.IntN(len(decKeys))]] = randValue(r, depth)
	}
	return m
}

// TestDecodeDirectMatchesJSON: whenever the direct path decodes, the JSON
// path decodes too, to the same value; the direct path never changes out
// when it gives up. Destinations start zero and with values already set.
func TestDecodeDirectMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seven := 7
	starts := []func() any{
		func() any { return &decAll{} },
		func() any { return &decAll{I: 3, S: "default", In: decInner{Rate: 2}, hidden: 1} },
		func() any {
			return &decAll{M: map[string]any{"k": 1.0}, Ptr: &decInner{Count: 1}, PI: &seven, Strs: []string{"a"}}
		},
		func() any { return &decInner{} },
		func() any { return &decEmbedded{} },
		func() any { return &map[string]any{} },
		func() any { return new(map[string]int) },
	}
	direct := 0
	for i := 0; i < 200000; i++ {
		params := randMap(r, 0)
		if i%3 == 0 {
			// Mostly well-typed params, as real experiments have.
			params = map[string]any{"i": r.IntN(100), "f": float64(r.IntN(8)) / 2, "s": "x", "b": true,
				"in":   map[string]any{"rate": r.IntN(5), "count": float64(r.IntN(5))},
				"list": []any{map[string]any{"rate": 1.5}}, "m": map[string]any{"a": []any{1, "b"}}, "strs": []any{"q"}}
			if r.IntN(2) == 0 {
				k := decKeys[r.IntN(len(decKeys))]
				params[k] = randValue(r, 1)
			}
		}
		start := starts[r.IntN(len(starts))]
		want, got := start(), start()
		before := fmt.Sprintf("%#v", got)
		errJSON := viaJSON(params, want)
		if !decodeDirect(params, got) {
			if after := fmt.Sprintf("%#v", got); after != before {
				t.Fatalf("%#v: gave up but changed out: %s → %s", params, before, after)
			}
			continue
		}
		direct++
		if errJSON != nil {
			t.Fatalf("%#v into %T: direct path decoded %#v, JSON path fails: %v", params, got, got, errJSON)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%#v into %T:\n direct %#v\n json   %#v", params, got, got, want)
		}
	}
	if direct < 5000 {
		t.Errorf("direct path taken only %d times of 200000", direct)
	}
	// Params as experiments have them take the direct path, or it is no
	// faster than before.
	var p decAll
	typical := map[string]any{"i": 4, "f": 0.5, "s": "x", "in": map[string]any{"rate": 2}, "list": []any{map[string]any{"count": 1.0}}, "m": map[string]any{"a": nil}}
	if !decodeDirect(typical, &p) {
		t.Errorf("%#v: not decoded directly", typical)
	}
}

// TestDecodeParamsDirectErrors: what the direct path leaves to encoding/json
// still gets DecodeParams' errors.
func TestDecodeParamsDirectErrors(t *testing.T) {
	var p decAll
	for params, want := range map[string]string{
		"unknown": "unknown parameter",
		"I":       "", // json's case-insensitive match: not an error
	} {
		err := DecodeParams(map[string]any{params: 1}, &p)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", params, err, want)
		}
	}
	if err := DecodeParams(map[string]any{"i": 1.5}, &p); err == nil || !strings.Contains(err.Error(), "with.i") {
		t.Errorf("1.5 into an int: %v", err)
	}
	if err := DecodeParams(map[string]any{"f": math.NaN()}, &p); err == nil {
		t.Error("NaN is not JSON, so not a param")
	}
}

func BenchmarkDecodeParams(b *testing.B) {
	params := map[string]any{"i": 4, "f": 0.5, "s": "x", "b": true,
		"in": map[string]any{"rate": 2, "count": 3.0}, "list": []any{map[string]any{"rate": 1.5}},
		"m": map[string]any{"a": []any{1, "b"}}, "strs": []any{"q"}, "NoTag": "y"}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var p decAll
			if err := DecodeParams(params, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var p decAll
			if err := viaJSON(params, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
