package store

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// slowCanonical is CanonicalJSON through encoding/json only.
func slowCanonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = writeCanonical(&buf, generic)
	return buf.Bytes(), err
}

// The direct encoder must give exactly the bytes of the encoding/json road,
// or keys would change between gsim versions.
func TestCanonicalJSONDirectMatchesSlow(t *testing.T) {
	vals := []any{
		nil, true, "", "a<b>&\"\\\n\t\u2028é", 0, -1, 1 << 62, int64(-1 << 63),
		0.5, -0.0, 1e21, 1e20, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64,
		float64(1 << 53), float64(1<<53) + 2, 1.0 / 3, 4.0,
		[]any{}, map[string]any{}, []any{1, "x", []any{map[string]any{"b": 2.5, "a": nil}}},
		map[string]any{"z": 1, "é": 2, "<": 3, "run": "echo $X > o.txt"},
	}
	for _, v := range vals {
		want, err := slowCanonical(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := CanonicalJSON(v)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("CanonicalJSON(%#v) = %s %v, want %s", v, got, err, want)
		}
	}
}

// FuzzCanonicalJSON: any JSON document, decoded as the YAML loader's plain
// types, encodes to the same bytes on both roads.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1.5,"x",null,true]}`, `1e300`, `"\u003c"`, `[-0.0, 1e21, 123456789012345678]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v any
		if json.Unmarshal([]byte(s), &v) != nil {
			return
		}
		want, err := slowCanonical(v)
		if err != nil {
			return
		}
		got, err := CanonicalJSON(v)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: direct %s (%v), slow %s", s, got, err, want)
		}
	})
}
