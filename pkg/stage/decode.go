package stage

import (
	"encoding"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// decodeDirect is DecodeParams' fast path: it fills out from params (the
// plain values the experiment loader yields: maps with string keys, lists,
// strings, numbers, booleans, nil) by reflection, without encoding them to
// JSON and parsing that back. Every kind decodes every instance's params
// several times a run (check, resources, fingerprint), so this is most of
// a no-op run's CPU in a big sweep.
//
// It does only what encoding/json with DisallowUnknownFields does in the
// same case, and gives up (false, out untouched) on anything else: a key
// that is not exactly a field's name (json's case-insensitive match, and
// unknown keys, which are errors), a number that does not fit, a type
// mismatch, a type with its own UnmarshalJSON or UnmarshalText, embedded
// structs, ",string" fields, json.Number, arrays, non-string map keys, and
// a destination that already holds a map, slice, pointer or interface
// (json would merge into it). The caller then takes the JSON path, which
// gives the exact value or the exact error. TestDecodeDirectMatchesJSON
// holds the two paths to the same answers.
func decodeDirect(params map[string]any, out any) bool {
	if !directDecode {
		return false
	}
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return false
	}
	dst := rv.Elem()
	if dst.IsZero() {
		// Giving up halfway leaves out as it was: zero.
		if !decodeValue(params, dst) {
			dst.SetZero()
			return false
		}
		return true
	}
	// Work on a copy, so that giving up halfway leaves out as it was.
	tmp := reflect.New(dst.Type()).Elem()
	tmp.Set(dst)
	if !decodeValue(params, tmp) {
		return false
	}
	dst.Set(tmp)
	return true
}

// directDecode is false only in tests that compare the two paths.
var directDecode = true

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	numberType          = reflect.TypeFor[json.Number]()
)

var customTypes sync.Map // reflect.Type → bool

// customDecoded: json hands such values to the type's own method.
func customDecoded(t reflect.Type) bool {
	if c, ok := customTypes.Load(t); ok {
		return c.(bool)
	}
	c := implementsDecoder(t)
	customTypes.Store(t, c)
	return c
}

func implementsDecoder(t reflect.Type) bool {
	if t == numberType {
		return true
	}
	if t.Kind() != reflect.Pointer {
		pt := reflect.PointerTo(t)
		if pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType) {
			return true
		}
	}
	return t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType)
}

func decodeValue(v any, dst reflect.Value) bool {
	t := dst.Type()
	if customDecoded(t) {
		return false
	}
	if v == nil {
		// json: null sets maps, slices, pointers and interfaces to nil and
		// leaves everything else alone.
		switch dst.Kind() {
		case reflect.Map, reflect.Slice, reflect.Pointer, reflect.Interface:
			dst.SetZero()
		}
		return true
	}
	switch dst.Kind() {
	case reflect.Pointer:
		if !dst.IsNil() {
			return false
		}
		p := reflect.New(t.Elem())
		if !decodeValue(v, p.Elem()) {
			return false
		}
		dst.Set(p)
		return true
	case reflect.Interface:
		if t.NumMethod() != 0 || !dst.IsNil() {
			return false
		}
		x, ok := plainValue(v)
		if !ok {
			return false
		}
		if x != nil {
			dst.Set(reflect.ValueOf(x))
		}
		return true
	}
	switch x := v.(type) {
	case bool:
		if dst.Kind() != reflect.Bool {
			return false
		}
		dst.SetBool(x)
	case string:
		// json.Marshal replaces invalid UTF-8; the JSON path does that.
		if dst.Kind() != reflect.String || !utf8.ValidString(x) {
			return false
		}
		dst.SetString(x)
	case int:
		return setInt(dst, int64(x))
	case int64:
		return setInt(dst, x)
	case float64:
		return setFloat(dst, x)
	case []any:
		if dst.Kind() != reflect.Slice || !dst.IsNil() || t.Elem().Kind() == reflect.Uint8 {
			return false // []byte is base64 in JSON
		}
		s := reflect.MakeSlice(t, len(x), len(x))
		for i, e := range x {
			if !decodeValue(e, s.Index(i)) {
				return false
			}
		}
		dst.Set(s)
	case map[string]any:
		switch dst.Kind() {
		case reflect.Struct:
			return decodeStruct(x, dst)
		case reflect.Map:
			if !dst.IsNil() || t.Key().Kind() != reflect.String || customDecoded(t.Key()) {
				return false
			}
			m := reflect.MakeMapWithSize(t, len(x))
			for k, e := range x {
				if !utf8.ValidString(k) {
					return false
				}
				ev := reflect.New(t.Elem()).Elem()
				if !decodeValue(e, ev) {
					return false
				}
				m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
			}
			dst.Set(m)
		default:
			return false
		}
	default:
		return false
	}
	return true
}

// setInt stores an integer as json would decode its decimal text.
func setInt(dst reflect.Value, n int64) bool {
	switch dst.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if dst.OverflowInt(n) {
			return false
		}
		dst.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n < 0 || dst.OverflowUint(uint64(n)) {
			return false
		}
		dst.SetUint(uint64(n))
	case reflect.Float64:
		dst.SetFloat(float64(n))
	default:
		return false // float32 rounds from the text; the JSON path knows how
	}
	return true
}

// setFloat stores a float64 as json would decode the text json.Marshal
// writes for it: integral values below 1e21 are written without a
// fraction or exponent, so integer fields take them.
func setFloat(dst reflect.Value, f float64) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return false // not JSON: the JSON path says so
	}
	switch dst.Kind() {
	case reflect.Float64:
		dst.SetFloat(f)
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if f != math.Trunc(f) || math.Abs(f) >= 1e18 || (f == 0 && math.Signbit(f)) {
			return false // an exponent, a fraction or "-0": the JSON path decides
		}
		return setInt(dst, int64(f))
	}
	return false
}

// plainValue is v as json decodes it into an empty interface: numbers
// become float64.
func plainValue(v any) (any, bool) {
	switch x := v.(type) {
	case nil, bool:
		return x, true
	case string:
		return x, utf8.ValidString(x)
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var ok bool
			if out[i], ok = plainValue(e); !ok {
				return nil, false
			}
		}
		return out, true
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			d, ok := plainValue(e)
			if !ok || !utf8.ValidString(k) {
				return nil, false
			}
			out[k] = d
		}
		return out, true
	}
	return nil, false
}

func decodeStruct(m map[string]any, dst reflect.Value) bool {
	fs := fieldsOf(dst.Type())
	if fs == nil {
		return false
	}
	for k, v := range m {
		i, ok := fs[k]
		if !ok || i < 0 {
			return false
		}
		if !decodeValue(v, dst.Field(i)) {
			return false
		}
	}
	return true
}

var structFields sync.Map // reflect.Type → map[string]int (nil: not handled)

// fieldsOf maps a struct's JSON names to field indexes (-1: a field the
// direct path leaves to json); nil when json's rules for the struct go
// beyond exact names of its own fields.
func fieldsOf(t reflect.Type) map[string]int {
	if f, ok := structFields.Load(t); ok {
		return f.(map[string]int)
	}
	fs := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			fs = nil
			break
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		} else if !validTag(name) {
			fs = nil // json falls back to the field's name
			break
		}
		if _, dup := fs[name]; dup {
			fs = nil // json drops both; let it say so
			break
		}
		fs[name] = i
		if strings.Contains(","+opts+",", ",string,") {
			fs[name] = -1 // quoted numbers: json's own rules
		}
	}
	structFields.Store(t, fs)
	return fs
}

// validTag is encoding/json's rule for a usable name in a json tag.
func validTag(s string) bool {
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
