package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// commands lists every (sub)command path with its command.
func commands(app *cli.Command) map[string]*cli.Command {
	out := map[string]*cli.Command{}
	var walk func(prefix string, cs []*cli.Command)
	walk = func(prefix string, cs []*cli.Command) {
		for _, c := range cs {
			out[prefix+c.Name] = c
			walk(prefix+c.Name+" ", c.Commands)
		}
	}
	walk("", app.Commands)
	return out
}

// Each flag's help shows its default once, and switches show none.
func TestHelpShowsEachDefaultOnce(t *testing.T) {
	for name := range commands(newApp()) {
		app := newApp()
		var buf strings.Builder
		app.Writer = &buf
		args := append([]string{"gsim"}, strings.Fields(name)...)
		if err := app.Run(context.Background(), append(args, "--help")); err != nil {
			t.Fatalf("gsim %s --help: %v", name, err)
		}
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Count(l, "(default:") > 1 {
				t.Errorf("gsim %s --help: two defaults in %q", name, l)
			}
			if strings.Contains(l, "(default: false)") {
				t.Errorf("gsim %s --help: a switch shows its default: %q", name, l)
			}
		}
	}
}

var (
	gsimCmdRE = regexp.MustCompile("gsim ((?:stage )?[a-z]+)([^`\n]*)")
	flagRE    = regexp.MustCompile(`(?:^|[\s\[(|])(--[a-z][a-z0-9-]*)`)
)

// A flag the docs show with a gsim command exists on that command and is
// listed in its --help.
func TestDocumentedFlagsAreInHelp(t *testing.T) {
	cmds := commands(newApp())
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md", "README.md")
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range gsimCmdRE.FindAllStringSubmatch(line, -1) {
				cmd := cmds[m[1]]
				if cmd == nil {
					continue // prose such as "gsim answers"
				}
				for _, fm := range flagRE.FindAllStringSubmatch(m[2], -1) {
					name := strings.TrimPrefix(fm[1], "--")
					checked++
					fl := findFlag(cmd.Flags, name)
					if name == "help" {
						continue
					}
					if fl == nil {
						t.Errorf("%s:%d: `gsim %s` has no flag --%s", f, i+1, m[1], name)
						continue
					}
					if vf, ok := fl.(cli.VisibleFlag); ok && !vf.IsVisible() {
						t.Errorf("%s:%d: --%s of gsim %s is documented but hidden from --help", f, i+1, name, m[1])
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d documented flags found; is the pattern still right?", checked)
	}
}
