// Package fuzzdir gives a fuzz target one scratch folder per test process,
// reused by every input (a fresh t.TempDir per input would cost more than
// the read under test), and removes it when the package's tests end, so
// that neither `go test` nor fuzzing leaves folders behind in the system's
// temporary directory.
package fuzzdir

import (
	"os"
	"sync"
	"testing"
)

// Dir is a scratch folder made on first use.
type Dir struct {
	prefix string
	once   sync.Once
	path   string
	err    error
}

// New returns a folder that will be named prefix followed by a random part.
func New(prefix string) *Dir { return &Dir{prefix: prefix} }

// Path makes the folder the first time it is asked for and returns it.
func (d *Dir) Path(tb testing.TB) string {
	tb.Helper()
	d.once.Do(func() { d.path, d.err = os.MkdirTemp("", d.prefix) })
	if d.err != nil {
		tb.Fatalf("scratch folder for fuzzing: %v", d.err)
	}
	return d.path
}

// remove deletes the folder if it was made.
func (d *Dir) remove() {
	d.once.Do(func() {}) // a folder never asked for is never made
	if d.path != "" {
		os.RemoveAll(d.path)
	}
}

// Main is a TestMain: it runs the tests (or a fuzzing worker), then removes
// every folder in dirs that was made, and exits with the tests' code.
func Main(m *testing.M, dirs ...*Dir) {
	code := m.Run()
	for _, d := range dirs {
		d.remove()
	}
	os.Exit(code)
}
