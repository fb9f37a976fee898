package experiment_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/experiment"
)

var update = flag.Bool("update", false, "rewrite golden files")

// setLines reads "# set: PATH=VALUE" header comments: the corpus's way of
// passing --set overrides.
func setLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sets []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "# set: "); ok {
			sets = append(sets, s)
		}
	}
	return sets
}

var positioned = regexp.MustCompile(`^testdata/bad/[a-z0-9-]+\.yaml:\d+:\d+: \S`)

// TestBadCorpus loads every file under testdata/bad and compares the error
// text with its golden .err file. Every message must be positioned.
func TestBadCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 14 {
		t.Fatalf("only %d bad files", len(files))
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			p, err := experiment.Load(path, experiment.Options{Sets: setLines(t, path), Registry: testRegistry()})
			if err == nil {
				t.Fatalf("loaded without error: %d instances", len(p.Instances))
			}
			got := err.Error() + "\n"
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			for _, l := range lines {
				if !positioned.MatchString(l) {
					t.Errorf("message is not positioned as file:line:col: %q", l)
				}
			}
			checkLeaves(t, err, len(lines))
			golden := strings.TrimSuffix(path, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error text differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// checkLeaves asserts the error is one *experiment.Error or a join of them,
// sorted by position, one per line of text.
func checkLeaves(t *testing.T, err error, lines int) {
	t.Helper()
	var leaves []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		leaves = j.Unwrap()
	} else {
		leaves = []error{err}
	}
	if len(leaves) != lines {
		t.Errorf("%d errors but %d lines: a message spans lines", len(leaves), lines)
	}
	prev := experiment.Error{}
	for _, e := range leaves {
		var xe *experiment.Error
		if !errors.As(e, &xe) {
			t.Errorf("not an *experiment.Error: %T %v", e, e)
			continue
		}
		if xe.Line < prev.Line || (xe.Line == prev.Line && xe.Col < prev.Col) {
			t.Errorf("not sorted by position: %v after %v", xe, &prev)
		}
		prev = *xe
	}
}

func TestErrorFormat(t *testing.T) {
	e := &experiment.Error{File: "x.yaml", Line: 3, Col: 5, Msg: "bad"}
	if e.Error() != "x.yaml:3:5: bad" {
		t.Errorf("%q", e.Error())
	}
}

func TestMissingFile(t *testing.T) {
	_, err := experiment.Load(filepath.Join(t.TempDir(), "nope.yaml"), experiment.Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("want a not-exist error, got %v", err)
	}
}
