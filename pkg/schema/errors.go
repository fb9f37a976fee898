package schema

import (
	"errors"
	"fmt"
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
	switch {
	case e.Row > 0:
		fmt.Fprintf(&b, ": row %d (line %d)", e.Row, e.Row+1)
	case e.Column != "":
		b.WriteString(": header")
	}
	if e.Column != "" {
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
