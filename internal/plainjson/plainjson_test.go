package plainjson

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func TestMarshalMatchesEncodingJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, "", "a<b>&\"\\\n\t\u2028é", 0, -1, 1 << 62, int64(-1 << 63),
		0.5, 1e-7, 1e21, 1e20, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, 4.0,
		[]any{}, map[string]any{}, []any{1, "x", []any{map[string]any{"b": 2.5, "a": nil}}},
		map[string]any{"z": 1, "é": 2, "<": 3, "run": "echo $X > o.txt"},
	} {
		want, _ := json.Marshal(v)
		got, ok := Marshal(v)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("Marshal(%#v) = %s %v, want %s", v, got, ok, want)
		}
	}
	if _, ok := Marshal(map[string]any{"t": struct{}{}}); ok {
		t.Error("a struct is not plain")
	}
	if _, ok := Marshal(math.NaN()); ok {
		t.Error("NaN is not JSON")
	}
}

func FuzzMarshal(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1.5,"x",null,true]}`, `1e300`, `"\u003c"`, `[-0.0, 1e21, 1e-7]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		want, _ := json.Marshal(v)
		got, ok := Marshal(v)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: %s, want %s", s, got, want)
		}
	})
}
