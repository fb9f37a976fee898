// Command gsim runs experiments that compare LLM-serving simulators with real
// GPU runs. This package only wires the CLI to the packages under pkg/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/suggest"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a stage failed, or corrupt outputs were found
	exitUsage   = 2 // bad flags, a bad experiment file, an impossible request
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfiles := startProfiles()
	app := newApp()
	err := app.Run(ctx, permuteArgs(app, os.Args))
	stop()
	stopProfiles()
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

func newApp() *cli.Command {
	onUsage := func(_ context.Context, c *cli.Command, err error, _ bool) error { return usageError{v2Error(c, err)} }
	app := &cli.Command{
		Name:  "gsim",
		Usage: "measure how far LLM-serving simulators are from the real GPU",
		Description: "gsim runs an experiment YAML as a graph of stages, reruns only what is out of date,\n" +
			"and keeps every output under the store: --store, else $GSIM_STORE, else the nearest tmp/\n" +
			"holding a gsim store in this folder or above, else ./tmp.",
		HideHelpCommand: true,
		// --set values contain commas (matrix.rate=[1,2]); never split them.
		DisableSliceFlagSeparator: true,
		OnUsageError:              onUsage,
		ExitErrHandler:            func(context.Context, *cli.Command, error) {}, // main decides exit codes
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run the out-of-date stages of an experiment",
				ArgsUsage: "EXPERIMENT.yaml",
				Flags: append([]cli.Flag{
					&cli.StringSliceFlag{Name: "set", Usage: "override a value: `PATH=VALUE`, e.g. stages.NAME.with.KEY=VALUE or matrix.VAR=[..] (repeatable)"},
					&cli.StringSliceFlag{Name: "only", Usage: "run only this `STAGE` and its ancestors (repeatable)"},
					&cli.StringSliceFlag{Name: "force", Usage: "rerun this `STAGE` even if up to date, or 'all' (repeatable)"},
					boolFlag("dry-run", "n", "say what would run and why, run nothing (and make no store)"),
					&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, DefaultText: "the CPU count", Usage: "`N` stages run at once",
						Action: atLeast("jobs", 1, "at least 1 (leave -j out for one per CPU)")},
					boolFlag("keep-going", "k", "after a failure, finish the independent stages"),
					storeFlag(),
					boolFlag("verify", "", "rehash complete outputs and rerun corrupt ones"),
					&cli.StringFlag{Name: "gpus", DefaultText: "every visible GPU (CUDA_VISIBLE_DEVICES, else nvidia-smi -L); 1 slot when none is visible",
						Usage: "the GPUs GPU stages run on, one stage per GPU: a count (`N`) or a list of devices (0,2,3; one device: device=2)"},
					&cli.StringFlag{Name: "progress", Value: "auto", Usage: "`MODE`: auto (bars on a terminal, else lines), bars, plain (timestamped lines) or none"},
					boolFlag("no-preflight", "", "start stages without first checking that this machine has what they need (CUDA torch, Vidur)"),
					boolFlag("subprocess", "", "run every stage as gsim stage exec SPEC.json in its own process, as a batch executor does"),
				}, executorFlags()...),
				OnUsageError: onUsage,
				Action:       runCmd,
			},
			{
				Name:         "status",
				Usage:        "show each stage instance: up-to-date, stale (why), missing, failed",
				ArgsUsage:    "EXPERIMENT.yaml",
				Flags:        []cli.Flag{boolFlag("verify", "", "rehash outputs and flag corrupt ones"), storeFlag(), &cli.StringSliceFlag{Name: "set", Usage: "override a value, as for run: `PATH=VALUE` (repeatable)"}},
				OnUsageError: onUsage,
				Action:       statusCmd,
			},
			{
				Name:         "dag",
				Usage:        "print the stage graph",
				ArgsUsage:    "EXPERIMENT.yaml",
				Flags:        []cli.Flag{&cli.StringFlag{Name: "format", Value: "text", Usage: "text, dot or mermaid"}, &cli.StringSliceFlag{Name: "set", Usage: "override a value, as for run: `PATH=VALUE` (repeatable)"}},
				OnUsageError: onUsage,
				Action:       dagCmd,
			},
			{
				Name:         "validate",
				Usage:        "check an experiment file without running it",
				ArgsUsage:    "EXPERIMENT.yaml",
				Flags:        []cli.Flag{&cli.StringSliceFlag{Name: "set", Usage: "override a value, as for run: `PATH=VALUE` (repeatable)"}},
				OnUsageError: onUsage,
				Action:       validateCmd,
			},
			{
				Name:         "clean",
				Usage:        "remove unfinished and failed attempts and outputs no run links to",
				Flags:        []cli.Flag{boolFlag("dry-run", "n", "only list what would be removed"), storeFlag()},
				OnUsageError: onUsage,
				Action:       cleanCmd,
			},
			{
				Name:  "open",
				Usage: "list an experiment's reports with their verdicts; --browser opens one",
				Description: "EXPERIMENT is the experiment's YAML file or its name; without it, the store's only experiment.\n" +
					"REPORT picks the report --browser opens (an instance such as compare[rate=4], or a stage name);\n" +
					"without it, the sweep report. The browser is $BROWSER, else xdg-open (open on macOS).",
				ArgsUsage: "[EXPERIMENT] [REPORT]",
				Flags: []cli.Flag{boolFlag("browser", "b", "open the report in the browser"), storeFlag(),
					&cli.StringSliceFlag{Name: "set", Usage: "override a value, as for run: `PATH=VALUE` (repeatable)"}},
				OnUsageError: onUsage,
				Action:       openCmd,
			},
			{
				Name:  "version",
				Usage: "print gsim's version",
				Action: func(_ context.Context, c *cli.Command) error {
					fmt.Fprintln(c.Root().Writer, "gsim", version())
					return nil
				},
			},
			{
				Name:  "stage",
				Usage: "stage plumbing for executors",
				Commands: []*cli.Command{{
					Name:         "exec",
					Usage:        "run one stage from its spec.json into the spec's out_dir",
					ArgsUsage:    "SPEC.json",
					OnUsageError: onUsage,
					Action:       stageExecCmd,
				}},
			},
		},
	}
	app.Action = rootAction
	keepV2Behaviour(app)
	return app
}

// rootAction runs for `gsim` alone and `gsim help [COMMAND]` (the help),
// and for a first word that is no command: a typo gets a usage error with
// the closest command and the list, not urfave/cli's "No help topic"
// (exit 3).
func rootAction(ctx context.Context, c *cli.Command) error {
	word := c.Args().First()
	if word == "" {
		return cli.ShowRootCommandHelp(c)
	}
	if (word == "help" || word == "h") && c.Args().Len() > 1 {
		topic := c.Args().Get(1)
		if c.Command(topic) != nil {
			return cli.ShowCommandHelp(ctx, c, topic)
		}
		word = topic
	} else if word == "help" || word == "h" {
		return cli.ShowRootCommandHelp(c)
	}
	var names []string
	for _, sub := range c.VisibleCommands() {
		names = append(names, sub.Name)
	}
	return usageError{fmt.Errorf("unknown command %q%s; the commands are %s (gsim --help says what each does)",
		word, suggest.DidYouMean(word, names), strings.Join(names, ", "))}
}

// boolFlag is a switch; its help shows no "(default: false)".
func boolFlag(name, alias, usage string) *cli.BoolFlag {
	f := &cli.BoolFlag{Name: name, Usage: usage, HideDefault: true}
	if alias != "" {
		f.Aliases = []string{alias}
	}
	return f
}
