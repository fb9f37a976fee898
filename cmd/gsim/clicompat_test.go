package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// runApp runs gsim's CLI in-process on args (after "gsim") and returns its
// standard output and error.
func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out strings.Builder
	app.Writer = &out
	app.ErrWriter = &out
	err := app.Run(context.Background(), permuteArgs(app, append([]string{"gsim"}, args...)))
	return out.String(), err
}

// The CLI shows and accepts what it did on urfave/cli v2.
func TestCLIAsBefore(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "x.yaml")
	if err := os.WriteFile(exp, []byte("name: x\nstages:\n  a: {uses: shell, with: {run: 'echo hi > a.txt', outputs: [a.txt]}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		out     []string // substrings of the output
		err     string   // substring of the error; "" for none
		exit    int      // the error's exit code when it has one
		noUsage bool     // the error is no usage error
	}{
		// A --set value keeps its commas (v3 splits slice flags unless
		// each command says not to).
		{name: "set keeps commas", args: []string{"validate", "--set", "stages.a.with.run=echo a,b > a.txt", exp}, out: []string{": ok (experiment x, 1 stage instances)"}},
		{name: "flags after the file", args: []string{"validate", exp, "--set", "stages.a.with.run=x,y"}, out: []string{": ok"}},
		{name: "usage line", args: []string{"run", "--help"}, out: []string{"   gsim run [command options] EXPERIMENT.yaml\n", "   --executor value  ", "   --slurm value [ --slurm value ]  ", "   --jobs N, -j N  "}},
		{name: "root usage line", args: []string{"--help"}, out: []string{"   gsim [global options] command [command options]\n"}},
		{name: "help subcommand", args: []string{"run", "help"}, out: []string{"NAME:\n   gsim run - run the out-of-date stages"}},
		{name: "help alias", args: []string{"status", "h"}, out: []string{"NAME:\n   gsim status - "}},
		{name: "help topic", args: []string{"stage", "help", "exec"}, out: []string{"NAME:\n   gsim stage exec - "}},
		{name: "no help topic", args: []string{"run", "help", "nosuch"}, err: `gsim run has no command "nosuch"; its commands: none`},
		{name: "help topic typo", args: []string{"stage", "help", "exce"}, err: `gsim stage has no command "exce" (did you mean "exec"?); its commands: exec`},
		// An unknown command is a usage error with the closest command
		// (v2 said "No help topic for 'runn'" and exited 3).
		{name: "unknown command", args: []string{"runn", "x.yaml"}, err: `unknown command "runn" (did you mean "run"?); the commands are run, status,`},
		{name: "unknown command, nothing close", args: []string{"zzzzzz"}, err: `unknown command "zzzzzz"; the commands are run,`},
		{name: "root help", args: []string{"help"}, out: []string{"   gsim [global options] command [command options]\n"}},
		{name: "root help topic", args: []string{"help", "status"}, out: []string{"NAME:\n   gsim status - "}},
		{name: "root help, unknown topic", args: []string{"help", "stauts"}, err: `unknown command "stauts" (did you mean "status"?)`},
		{name: "no arguments", args: nil, out: []string{"COMMANDS:\n   run "}},
		{name: "run help flags stay on run", args: []string{"run", "help", "--help"}, out: []string{"gsim run help [command options] [command]"}},
		{name: "bad int", args: []string{"run", "-j", "abc", exp}, err: `invalid value "abc" for flag -j: parse error`},
		{name: "bad bool", args: []string{"run", "--dry-run=maybe", exp}, err: `invalid boolean value "maybe" for -dry-run: parse error`},
		{name: "missing value", args: []string{"run", "--store"}, err: "flag needs an argument: -store"},
		{name: "unknown flag", args: []string{"run", exp, "--nosuch"}, err: "flag provided but not defined: -nosuch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runApp(t, tt.args...)
			for _, w := range tt.out {
				if !strings.Contains(out, w) {
					t.Errorf("gsim %s: output lacks %q:\n%s", strings.Join(tt.args, " "), w, out)
				}
			}
			if tt.err == "" {
				if err != nil {
					t.Fatalf("gsim %s: %v", strings.Join(tt.args, " "), err)
				}
				return
			}
			if err == nil || err.Error() != tt.err && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("gsim %s: error %v, want %q", strings.Join(tt.args, " "), err, tt.err)
			}
			var ee cli.ExitCoder
			if tt.exit != 0 && (!errors.As(err, &ee) || ee.ExitCode() != tt.exit) {
				t.Errorf("gsim %s: %v is no exit code %d", strings.Join(tt.args, " "), err, tt.exit)
			}
			var ue usageError
			if errors.As(err, &ue) == tt.noUsage {
				t.Errorf("gsim %s: usage error %v, want %v", strings.Join(tt.args, " "), !tt.noUsage, tt.noUsage)
			}
		})
	}
}
