// Package lazyre is a regular expression compiled on first use. Every
// package-level regexp.MustCompile runs when gsim starts, for every
// command, whether or not the command needs it: a command that does
// nothing (a no-op run, gsim version) should not pay for every pattern of
// every kind.
package lazyre

import (
	"regexp"
	"sync"
)

// RE is a regexp compiled by its first method call; a bad pattern panics
// there, as regexp.MustCompile would at start-up (tests cover each).
type RE struct {
	get func() *regexp.Regexp
}

// New returns the lazily compiled expr.
func New(expr string) *RE {
	return &RE{get: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })}
}

// Regexp is the compiled expression.
func (r *RE) Regexp() *regexp.Regexp { return r.get() }

func (r *RE) MatchString(s string) bool { return r.get().MatchString(s) }

func (r *RE) FindStringSubmatch(s string) []string { return r.get().FindStringSubmatch(s) }

func (r *RE) FindAllStringSubmatch(s string, n int) [][]string {
	return r.get().FindAllStringSubmatch(s, n)
}

func (r *RE) ReplaceAllString(src, repl string) string { return r.get().ReplaceAllString(src, repl) }
