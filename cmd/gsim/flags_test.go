package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCountFlagsRefused: a count that cannot mean anything is a usage error
// before anything is loaded or run, naming the flag and what to give.
func TestCountFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "x.yaml")
	if err := os.WriteFile(exp, []byte("name: x\nstages:\n  a: {uses: shell, with: {run: 'echo hi > a.txt', outputs: [a.txt]}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-j", "0"}, "--jobs 0: give at least 1"},
		{[]string{"-j", "-1"}, "--jobs -1: give at least 1"},
		{[]string{"--jobs=-3"}, "--jobs -3: give at least 1"},
		{[]string{"--gpus", "-1"}, "--gpus -1: want at least 1"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			app := newApp()
			args := append([]string{"gsim", "run", "--store", store, exp}, tc.args...)
			err := app.Run(context.Background(), permuteArgs(app, args))
			var ue usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("gsim %s: %v, want a usage error with %q", strings.Join(args[1:], " "), err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(store, "objects")); err == nil {
				t.Errorf("a stage ran despite the bad flag")
			}
		})
	}
	app := newApp()
	if err := app.Run(context.Background(), permuteArgs(app, []string{"gsim", "run", "--store", store, exp, "-j", "1", "--gpus", "1"})); err != nil {
		t.Errorf("-j 1 --gpus 1: %v", err)
	}
}
