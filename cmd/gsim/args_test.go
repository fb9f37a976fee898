package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"gsim run exp.yaml --force all -n", "gsim run --force all -n exp.yaml"},
		{"gsim run --set a=1 exp.yaml --set=b=2", "gsim run --set a=1 --set=b=2 exp.yaml"},
		{"gsim run exp.yaml --dry-run --jobs 3", "gsim run --dry-run --jobs 3 exp.yaml"},
		{"gsim stage exec spec.json", "gsim stage exec spec.json"},
		{"gsim status exp.yaml --verify", "gsim status --verify exp.yaml"},
		{"gsim run -- -odd.yaml", "gsim run -- -odd.yaml"},
		{"gsim run x.yaml -n -- -odd.yaml", "gsim run -n -- x.yaml -odd.yaml"},
		{"gsim nosuch x --y", "gsim nosuch x --y"},
		{"gsim", "gsim"},
	}
	app := newApp()
	for _, tt := range tests {
		got := strings.Join(permuteArgs(app, strings.Fields(tt.in)), " ")
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q → %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckFileArg(t *testing.T) {
	dir := t.TempDir()
	yaml := filepath.Join(dir, "x.yaml")
	if err := os.WriteFile(yaml, []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, arg string
		want      []string // substrings; none means no error
	}{
		{"file", yaml, nil},
		{"missing", filepath.Join(dir, "nope.yaml"), []string{"status: ", "nope.yaml: no such file; give the path of the EXPERIMENT.yaml (e.g. experiments/quickstart.yaml)"}},
		{"folder", dir, []string{"is a folder; give one EXPERIMENT.yaml file", "(in it: " + yaml + ")"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFileArg("status", "EXPERIMENT.yaml", tt.arg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "stat ") {
				t.Errorf("error %q is a bare stat error", err)
			}
		})
	}
}
