// Command gsim runs experiments that compare LLM-serving simulators with real
// GPU runs. This package only wires the CLI to the packages under pkg/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/experiment"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a stage failed, or corrupt outputs were found
	exitUsage   = 2 // bad flags, a bad experiment file, an impossible request
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp()
	err := app.RunContext(ctx, permuteArgs(app, os.Args))
	stop()
	os.Exit(report(err))
}

// usageError marks errors in how gsim was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func report(err error) int {
	if err == nil {
		return exitOK
	}
	var ee cli.ExitCoder
	if errors.As(err, &ee) {
		if msg := ee.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "gsim:", msg)
		}
		return ee.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "gsim:", err)
	var ue usageError
	var xe *experiment.Error
	var ee2 *executor.UsageError
	if errors.As(err, &ue) || errors.As(err, &xe) || errors.As(err, &ee2) {
		return exitUsage
	}
	return exitFailure
}

func newApp() *cli.App {
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	storeFlag := &cli.StringFlag{Name: "store", Value: "tmp", EnvVars: []string{"GSIM_STORE"},
		Usage: "artifact store folder"}
	app := &cli.App{
		Name:  "gsim",
		Usage: "measure how far LLM-serving simulators are from the real GPU",
		Description: "gsim runs an experiment YAML as a graph of stages, reruns only what is out of date,\n" +
			"and keeps every output under the store (tmp/ by default).",
		HideHelpCommand: true,
		// --set values contain commas (matrix.rate=[1,2]); never split them.
		DisableSliceFlagSeparator: true,
		OnUsageError:              onUsage,
		ExitErrHandler:            func(*cli.Context, error) {}, // main decides exit codes
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run the out-of-date stages of an experiment",
				ArgsUsage: "EXPERIMENT.yaml",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "set", Usage: "override a value: stages.NAME.with.PATH=VALUE, matrix.VAR=[..] (repeatable)"},
					&cli.StringSliceFlag{Name: "only", Usage: "run only this stage and its ancestors (repeatable)"},
					&cli.StringSliceFlag{Name: "force", Usage: "rerun this stage even if up to date, or 'all' (repeatable)"},
					&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would run and why, run nothing"},
					&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "stages run at once (default: CPU count)",
						Action: atLeast("jobs", 1, "at least 1 (leave -j out for one per CPU)")},
					&cli.BoolFlag{Name: "keep-going", Aliases: []string{"k"}, Usage: "after a failure, finish the independent stages"},
					storeFlag,
					&cli.BoolFlag{Name: "verify", Usage: "rehash complete outputs and rerun corrupt ones"},
					&cli.IntFlag{Name: "gpus", Value: 1, Usage: "GPU slots: GPU stages running at once",
						Action: atLeast("gpus", 0, "0 or more (0 when this machine has no GPU)")},
					&cli.BoolFlag{Name: "no-preflight", Usage: "start stages without first checking that this machine has what they need (CUDA torch, Vidur)"},
					&cli.BoolFlag{Name: "subprocess", Hidden: true, Usage: "run every stage as `gsim stage exec`"},
				},
				OnUsageError: onUsage,
				Action:       runCmd,
			},
			{
				Name:         "status",
				Usage:        "show each stage instance: up-to-date, stale (why), missing, failed",
				ArgsUsage:    "EXPERIMENT.yaml",
				Flags:        []cli.Flag{&cli.BoolFlag{Name: "verify", Usage: "rehash outputs and flag corrupt ones"}, storeFlag, &cli.StringSliceFlag{Name: "set", Usage: "as for run"}},
				OnUsageError: onUsage,
				Action:       statusCmd,
			},
			{
				Name:         "dag",
				Usage:        "print the stage graph",
				ArgsUsage:    "EXPERIMENT.yaml",
				Flags:        []cli.Flag{&cli.StringFlag{Name: "format", Value: "text", Usage: "text, dot or mermaid"}, &cli.StringSliceFlag{Name: "set", Usage: "as for run"}},
				OnUsageError: onUsage,
				Action:       dagCmd,
			},
			{
				Name:         "validate",
				Usage:        "check an experiment file without running it",
				ArgsUsage:    "EXPERIMENT.yaml",
				Flags:        []cli.Flag{&cli.StringSliceFlag{Name: "set", Usage: "as for run"}},
				OnUsageError: onUsage,
				Action:       validateCmd,
			},
			{
				Name:         "clean",
				Usage:        "remove unfinished and failed attempts and outputs no run links to",
				Flags:        []cli.Flag{&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only list what would be removed"}, storeFlag},
				OnUsageError: onUsage,
				Action:       cleanCmd,
			},
			{
				Name:   "version",
				Usage:  "print gsim's version",
				Action: func(c *cli.Context) error { fmt.Fprintln(c.App.Writer, "gsim", version()); return nil },
			},
			{
				Name:  "stage",
				Usage: "stage plumbing for executors",
				Subcommands: []*cli.Command{{
					Name:         "exec",
					Usage:        "run one stage from its spec.json into the spec's out_dir",
					ArgsUsage:    "SPEC.json",
					OnUsageError: onUsage,
					Action:       stageExecCmd,
				}},
			},
		},
	}
	return app
}
