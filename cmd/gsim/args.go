package main

import (
	"strings"

	"github.com/urfave/cli/v3"
)

// permuteArgs moves flags given after the positional arguments of a
// (sub)command in front of them, so `gsim run exp.yaml --force all` works.
// urfave/cli v2 stopped parsing flags at the first positional argument;
// v3 reads later flags too, but with its own rules at the edges (it stops
// at an argument such as -1 and hands everything after a word that names a
// subcommand to it), so gsim keeps this one rule of its own.
func permuteArgs(app *cli.Command, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds := app.Commands
	i := 1
	var cmd *cli.Command
	// Walk down the command path (e.g. "stage exec").
	for i < len(args) {
		c := find(cmds, args[i])
		if c == nil {
			break
		}
		out = append(out, args[i])
		cmd, cmds = c, c.Commands
		i++
	}
	if cmd == nil {
		return args
	}
	var flags, pos []string
	dashdash := false
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			dashdash = true
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := findFlag(cmd.Flags, name); f != nil && takesValue(f) && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	out = append(out, flags...)
	if dashdash {
		out = append(out, "--")
	}
	return append(out, pos...)
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	if dg, ok := f.(cli.DocGenerationFlag); ok {
		return dg.TakesValue()
	}
	return true
}
