package experiment

import (
	"errors"
	"fmt"
	"sort"
	"strings"
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

// closest returns the candidate nearest to s by edit distance, if it is near
// enough to be a plausible typo.
func closest(s string, candidates []string) (string, bool) {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 {
		return "", false
	}
	limit := len(s) / 2
	if limit < 2 {
		limit = 2
	}
	return best, bestD <= limit
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// didYouMean formats a suggestion suffix, or "" when nothing is close.
func didYouMean(s string, candidates []string) string {
	if c, ok := closest(s, candidates); ok {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}
