// Package plainjson encodes the plain values YAML and JSON decoding yield
// (maps with string keys, lists, strings, numbers, booleans, nil) exactly
// as encoding/json.Marshal does, without its reflection: gsim encodes every
// instance's params several times per run.
package plainjson

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
)

// Marshal returns json.Marshal(v) for plain values; ok is false (and the
// caller should use encoding/json) for anything else.
func Marshal(v any) (b []byte, ok bool) {
	var buf bytes.Buffer
	if !Append(&buf, v) {
		return nil, false
	}
	return buf.Bytes(), true
}

// Append writes v as json.Marshal would, reporting false (with buf in any
// state) if v holds a value that is not plain.
func Append(buf *bytes.Buffer, v any) bool {
	return AppendFloats(buf, v, marshalFloat)
}

// AppendFloats is Append with every float64 written by float, which
// reports false for a float it cannot write: the store's keys write
// integral floats as integers (YAML's 4 and 4.0 are one key) and share
// the rest of the encoding.
func AppendFloats(buf *bytes.Buffer, v any, float func(float64) (string, bool)) bool {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case string:
		String(buf, x)
	case int:
		buf.WriteString(strconv.Itoa(x))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case float64:
		s, ok := float(x)
		if !ok {
			return false
		}
		buf.WriteString(s)
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if !AppendFloats(buf, e, float) {
				return false
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
			String(buf, k)
			buf.WriteByte(':')
			if !AppendFloats(buf, x[k], float) {
				return false
			}
		}
		buf.WriteByte('}')
	default:
		return false
	}
	return true
}

// marshalFloat is encoding/json's float format, which has its own rules
// (exponent thresholds, e-07 written e-7): ask it.
func marshalFloat(f float64) (string, bool) {
	b, err := json.Marshal(f)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// String writes s quoted as encoding/json does (HTML-safe escapes
// included), copying plain ASCII directly.
func String(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}
