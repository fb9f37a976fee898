package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Error is a problem in one artifact file. Row counts data rows from 1 (the
// header is line 1, so row N is line N+1 in an editor); Row 0 means the
// header or the file as a whole. Column is empty when the problem is not one
// column's.
type Error struct {
	File   string
	Row    int
	Column string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	isJSON := strings.HasSuffix(e.File, ".json")
	switch {
	case e.Row > 0 && strings.HasSuffix(e.File, ParquetSuffix):
		fmt.Fprintf(&b, ": row %d", e.Row) // a Parquet file has no lines
	case e.Row > 0:
		fmt.Fprintf(&b, ": row %d (line %d)", e.Row, e.Row+1)
	case e.Column != "" && isJSON:
		fmt.Fprintf(&b, ": field %s", e.Column) // a JSON file has no header
	case e.Column != "":
		b.WriteString(": header")
	}
	if e.Column != "" && (e.Row > 0 || !isJSON) {
		fmt.Fprintf(&b, ", column %s", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// AsError returns the first *Error in err's tree, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func rowErr(file string, row int, col, format string, args ...any) *Error {
	return &Error{File: file, Row: row, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// jsonErr says where a JSON file is broken (line and column, or the field
// of the wrong type) instead of encoding/json's bare "unexpected end of JSON
// input" or "cannot unmarshal number into Go struct field RunMeta.x".
func jsonErr(path string, b []byte, err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := 1, 1
		// Offset is just past the bad byte, or the length at a cut-short end.
		n := min(int(se.Offset), len(b))
		if n < len(b) {
			n = max(0, n-1)
		}
		for _, c := range b[:n] {
			if c == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return &Error{File: path, Msg: fmt.Sprintf("not valid JSON at line %d, column %d: %v; the file is cut short or hand-edited: restore it from where it came from, or regenerate it", line, col, se)}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a " + te.Type.String()
		switch te.Type.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "an integer"
		case reflect.Float32, reflect.Float64:
			want = "a number"
		case reflect.String:
			want = "a string"
		case reflect.Bool:
			want = "true or false"
		case reflect.Slice, reflect.Array:
			want = "a list"
		case reflect.Map, reflect.Struct:
			want = "an object"
		}
		return &Error{File: path, Column: te.Field, Msg: fmt.Sprintf("expected %s, got a JSON %s", want, te.Value)}
	}
	return &Error{File: path, Msg: fmt.Sprintf("not valid JSON: %v", err)}
}
