package experiment

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gsim-dev/gsim/pkg/suggest"
)

// Error is one problem in an experiment file, positioned so editors and
// terminals can jump to it.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	col := e.Col
	if col <= 0 {
		col = 1
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, col, e.Msg)
}

// Pos is a 1-based line and column in the experiment file.
type Pos struct {
	Line, Col int
}

// problems accumulates positioned errors so that one run reports every
// mistake it can find, not only the first.
type problems struct {
	file string
	errs []*Error
}

func (p *problems) add(at Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: at.Line, Col: at.Col, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) any() bool { return len(p.errs) > 0 }

// err sorts by position (then text, for determinism), drops exact duplicates
// and joins; nil when there is nothing to report.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Msg < b.Msg
	})
	var out []error
	var last *Error
	for _, e := range p.errs {
		if last != nil && *last == *e {
			continue
		}
		out = append(out, e)
		last = e
	}
	if len(out) == 1 {
		return out[0]
	}
	return errors.Join(out...)
}

// didYouMean formats a suggestion suffix, or "" when nothing is close.
func didYouMean(s string, candidates []string) string {
	return suggest.DidYouMean(s, candidates)
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}
