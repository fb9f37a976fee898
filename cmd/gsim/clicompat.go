package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/gsim-dev/gsim/pkg/suggest"
)

// gsim's CLI was built on urfave/cli v2, whose built-in man-page and
// markdown generator (blackfriday, go-md2man) cost every command about
// 5 ms of package initialisation; v3 has none. keepV2Behaviour makes v3
// show and accept what v2 did, so users see no difference: the same usage
// lines, value placeholders, `help` subcommands, flags that belong to
// their own command only and error wording, and --set values never split
// at commas. (One difference is left: v3 never lists the `help`
// subcommand, so `gsim stage --help` no longer shows its "help, h" line.)
func keepV2Behaviour(root *cli.Command) {
	root.UsageText = root.Name + " [global options] command [command options]"
	root.DisableSliceFlagSeparator = true
	var walk func(parent *cli.Command, path string)
	walk = func(parent *cli.Command, path string) {
		for _, c := range parent.Commands {
			full := path + " " + c.Name
			// v3 reads the separator setting from the command being parsed.
			c.DisableSliceFlagSeparator = true
			c.UsageText = full + " [command options]"
			if c.ArgsUsage != "" {
				c.UsageText += " " + c.ArgsUsage
			}
			for _, f := range c.Flags {
				keepPlaceholder(f)
				keepLocal(f)
			}
			walk(c, full)
			c.Commands = append(c.Commands, helpCommand(parent, c, full))
		}
	}
	walk(root, root.Name)
}

// helpCommand is the `help` (`h`) subcommand v2 gave every command below
// the root: `gsim run help` prints run's help, `gsim stage help exec`
// exec's. It is listed only where the command has subcommands of its own.
func helpCommand(parent, c *cli.Command, path string) *cli.Command {
	return &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     cli.UsageCommandHelp,
		UsageText: path + " help [command options] [command]",
		Hidden:    len(c.Commands) == 0,
		Action: func(ctx context.Context, h *cli.Command) error {
			if topic := h.Args().First(); topic != "" {
				if c.Command(topic) == nil {
					var names []string
					for _, sub := range c.VisibleCommands() {
						names = append(names, sub.Name)
					}
					return usageError{fmt.Errorf("%s has no command %q%s; its commands: %s",
						path, topic, suggest.DidYouMean(topic, names), cmp.Or(strings.Join(names, ", "), "none"))}
				}
				return cli.ShowCommandHelp(ctx, c, topic)
			}
			return cli.ShowCommandHelp(ctx, parent, c.Name)
		},
	}
}

// keepPlaceholder shows a value flag whose usage names no `PLACEHOLDER`
// as v2 did, "--format value", not v3's "--format string".
func keepPlaceholder(f cli.Flag) {
	df, ok := f.(cli.DocGenerationFlag)
	ss, ok2 := f.(cli.StringerSetter)
	if !ok || !ok2 || !df.TakesValue() || strings.Contains(df.GetUsage(), "`") {
		return
	}
	ss.SetStringer(func(f cli.Flag) string {
		s := cli.FlagStringer(f)
		names, rest, _ := strings.Cut(s, "\t")
		return strings.ReplaceAll(names, " "+df.TypeName(), " value") + "\t" + rest
	})
}

// keepLocal keeps a flag to its own command, as in v2: v3 passes flags
// down to subcommands unless they are marked local.
func keepLocal(f cli.Flag) {
	switch f := f.(type) {
	case *cli.StringFlag:
		f.Local = true
	case *cli.StringSliceFlag:
		f.Local = true
	case *cli.BoolFlag:
		f.Local = true
	case *cli.IntFlag:
		f.Local = true
	}
}

// v2Error words a flag-parsing error as v2 (Go's flag package) did:
// "invalid value "abc" for flag -j: parse error", "invalid boolean value
// "x" for -dry-run: parse error", "flag needs an argument: -store".
func v2Error(c *cli.Command, err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if val, err := strconv.QuotedPrefix(rest); err == nil {
			if name, ok := strings.CutPrefix(rest[len(val):], " for flag -"); ok {
				name, _, _ = strings.Cut(name, ":")
				if isBool(c, name) {
					return errors.New("invalid boolean value " + val + " for -" + name + ": parse error")
				}
				return errors.New("invalid value " + val + " for flag -" + name + ": parse error")
			}
		}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return errors.New("flag needs an argument: -" + strings.TrimLeft(name, "-"))
	}
	return err
}

func isBool(c *cli.Command, name string) bool {
	if name == "help" || name == "h" {
		return true
	}
	f := findFlag(c.Flags, name)
	if f == nil {
		return false
	}
	df, ok := f.(cli.DocGenerationFlag)
	return ok && !df.TakesValue()
}
