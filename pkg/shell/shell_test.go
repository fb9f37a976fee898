package shell

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gsim-dev/gsim/pkg/stage"
)

func TestCheckParams(t *testing.T) {
	tests := []struct {
		params map[string]any
		want   string // substring of the error, "" for none
	}{
		{map[string]any{"run": "true"}, ""},
		{map[string]any{"argv": []any{"true"}, "outputs": []any{"a/b.txt"}}, ""},
		{map[string]any{}, "with.run: missing"},
		{map[string]any{"run": "x", "argv": []any{"y"}}, "not both"},
		{map[string]any{"run": "x", "outputs": []any{"../a"}}, "with.outputs.0"},
		{map[string]any{"run": "x", "outputs": []any{"/a"}}, "with.outputs.0"},
		{map[string]any{"run": "x", "typo": 1}, "with.typo: unknown parameter"},
		{map[string]any{"run": "x", "env": map[string]any{"RATE": 4, "_x1": "a", "ok": true}}, ""},
		// gsim's own variables tell the command where to write: a stage
		// that overrode GSIM_OUT would write outside its staging folder.
		{map[string]any{"run": "x", "env": map[string]any{"GSIM_OUT": "/tmp"}}, "with.env.GSIM_OUT: names starting with GSIM_ are gsim's own"},
		{map[string]any{"run": "x", "env": map[string]any{"GSIM_INPUT_W": "/tmp"}}, "with.env.GSIM_INPUT_W: names starting with GSIM_"},
		{map[string]any{"run": "x", "env": map[string]any{"BAD;KEY": 1}}, `with.env.BAD;KEY: "BAD;KEY" is not a variable name`},
		{map[string]any{"run": "x", "env": map[string]any{"A=B": 1}}, `with.env.A=B: "A=B" is not a variable name`},
		{map[string]any{"run": "x", "env": map[string]any{"1X": 1}}, "is not a variable name"},
		{map[string]any{"run": "x", "env": map[string]any{"": 1}}, "is not a variable name"},
		{map[string]any{"run": "x", "env": map[string]any{"X": `a\x00b`}}, ""},
		{map[string]any{"run": "x", "env": map[string]any{"X": "a\x00b"}}, "with.env.X: holds a NUL byte"},
		{map[string]any{"run": "x", "env": map[string]any{"X": []any{1}}}, "with.env.X: expected a string, number or boolean"},
	}
	for _, tt := range tests {
		err := Kind{}.CheckParams(tt.params)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: unexpected %v", tt.params, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: got %v, want %q", tt.params, err, tt.want)
		}
	}
}

func TestRunEnvAndValidate(t *testing.T) {
	out := t.TempDir()
	spec := &stage.Spec{
		SchemaVersion: stage.SpecVersion, Instance: "s[rate=4]", OutDir: out,
		Params: map[string]any{
			"run":     `echo "$GSIM_MATRIX_RATE $GSIM_INPUT_UP_STREAM $FOO" > out.txt; printf '%s' "$GSIM_INPUTS_UP_STREAM" > all.txt; test -f "$GSIM_SPEC"`,
			"outputs": []any{"out.txt", "all.txt"},
			"env":     map[string]any{"FOO": 2.5},
		},
		Matrix: map[string]any{"rate": 4.0},
		Inputs: map[string][]stage.Input{"up-stream": {{Dir: "/a"}, {Dir: "/b"}}},
	}
	var log strings.Builder
	if err := (Kind{}).Run(context.Background(), spec, stage.Env{Log: &log}); err != nil {
		t.Fatal(err, log.String())
	}
	if err := (Kind{}).Validate(spec); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(out, "out.txt"))
	if got := strings.TrimSpace(string(b)); got != "4 /a 2.5" {
		t.Errorf("out.txt = %q", got)
	}
	b, _ = os.ReadFile(filepath.Join(out, "all.txt"))
	if string(b) != "/a\n/b" {
		t.Errorf("all.txt = %q", b)
	}
	spec.Params["outputs"] = []any{"out.txt", "nope.csv"}
	if err := (Kind{}).Validate(spec); err == nil || !strings.Contains(err.Error(), "nope.csv") {
		t.Errorf("validate = %v", err)
	}
}

func TestRunFailure(t *testing.T) {
	spec := &stage.Spec{OutDir: t.TempDir(), Params: map[string]any{"run": "echo boom; false; echo never"}}
	err := (Kind{}).Run(context.Background(), spec, stage.Env{})
	var ee *stage.ExitError
	if !asExit(err, &ee) || ee.ExitCode != 1 || !strings.Contains(ee.LogTail, "boom") || strings.Contains(ee.LogTail, "never") {
		t.Errorf("err = %v", err)
	}
}

func asExit(err error, target **stage.ExitError) bool {
	e, ok := err.(*stage.ExitError)
	*target = e
	return ok
}
