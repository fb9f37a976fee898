package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/gsim-dev/gsim/internal/plainjson"
)

// keyFormat is part of every key so a change to how keys are computed can
// never collide with keys of an older gsim.
const keyFormat = "gsim-key-v1"

// InputRef is one upstream output a key depends on.
type InputRef struct {
	Need     string `json:"need"`
	Instance string `json:"instance"`
	Key      string `json:"key"`
	Digest   string `json:"digest"`
}

// KeyInput is everything a stage instance's key covers. The instance's own
// id is deliberately absent: two instances that would compute the same thing
// from the same inputs share one object.
type KeyInput struct {
	Kind        string
	Version     string
	Fingerprint map[string]string
	Params      map[string]any
	// Inputs in the instance's need order, cells in cell order. Only the
	// need name, instance and output digest enter the key (not the upstream
	// key), so an upstream rerun that reproduces identical bytes keeps
	// downstream keys.
	Inputs []InputRef
	// CanonicalParams, if set, is CanonicalJSON(Params), already computed.
	CanonicalParams []byte
}

var newline = []byte{'\n'}

// Key returns the hex sha256 key of in.
func Key(in KeyInput) (string, error) {
	params := in.CanonicalParams
	if params == nil {
		var err error
		if params, err = CanonicalJSON(in.Params); err != nil {
			return "", fmt.Errorf("params: %w", err)
		}
	}
	h := sha256.New()
	// Each field is written as "NAME LEN:VALUE\n" (without fmt: a big
	// sweep computes a key per instance).
	var buf [64]byte
	head := func(name string, n int) {
		b := append(buf[:0], name...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(n), 10)
		h.Write(append(b, ':'))
	}
	field := func(name, v string) {
		head(name, len(v))
		io.WriteString(h, v)
		h.Write(newline)
	}
	field("format", keyFormat)
	field("kind", in.Kind)
	field("version", in.Version)
	labels := make([]string, 0, len(in.Fingerprint))
	for k := range in.Fingerprint {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	for _, k := range labels {
		field("fp", k)
		field("fpv", in.Fingerprint[k])
	}
	head("params", len(params))
	h.Write(params)
	h.Write(newline)
	for _, r := range in.Inputs {
		field("need", r.Need)
		field("instance", r.Instance)
		field("digest", r.Digest)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var canonBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// CanonicalJSON encodes v with sorted object keys, no insignificant space and
// canonical numbers (an integral value is written as an integer whatever Go
// type carried it, so YAML's 4 and 4.0 give the same key).
func CanonicalJSON(v any) ([]byte, error) {
	// Params as the experiment loader makes them (maps, lists, strings,
	// numbers, booleans) are written directly; anything else takes the
	// slower road through encoding/json, which gives the same bytes.
	bp := canonBufs.Get().(*bytes.Buffer)
	defer canonBufs.Put(bp)
	bp.Reset()
	if writeDirect(bp, v) {
		// One allocation of the exact size: a big sweep keeps one per
		// instance.
		return bytes.Clone(bp.Bytes()), nil
	}
	var buf bytes.Buffer
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
	buf.Reset()
	if err := writeCanonical(&buf, generic); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeCanonical(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case string:
		b, err := json.Marshal(x)
		if err != nil {
			return err
		}
		buf.Write(b)
	case json.Number:
		s, err := canonicalNumber(x)
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeCanonical(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("canonical json: unexpected %T", v)
	}
	return nil
}

// writeDirect writes v canonically if it is made only of the plain types
// YAML decoding yields; it reports false (with buf in any state) otherwise.
func writeDirect(buf *bytes.Buffer, v any) bool {
	return plainjson.AppendFloats(buf, v, canonicalFloat)
}

// canonicalFloat is canonicalNumber for a float64 as encoding/json would
// have printed it; NaN and infinities are not JSON (ok false).
func canonicalFloat(f float64) (string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10), true
	}
	// encoding/json prints floats in the shortest form that round-trips,
	// which ParseFloat then FormatFloat(-1) reproduces exactly.
	b, err := json.Marshal(f)
	if err != nil {
		return "", false
	}
	s, err := canonicalNumber(json.Number(b))
	return s, err == nil
}

func canonicalNumber(n json.Number) (string, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.FormatInt(i, 10), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "", fmt.Errorf("canonical json: number %s: %w", s, err)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.FormatInt(int64(f), 10), nil
	}
	return strconv.FormatFloat(f, 'g', -1, 64), nil
}

// FormatValue renders a param value the way status explanations show it.
func FormatValue(v any) string {
	b, err := CanonicalJSON(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
