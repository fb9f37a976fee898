package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/gsim-dev/gsim/pkg/dag"
	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/kinds"
	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/progress"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

func oneArg(c *cli.Command, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usageError{fmt.Errorf("%s: want exactly one %s argument, got %d (see gsim %s --help)", c.Name, what, c.NArg(), c.Name)}
	}
	arg := c.Args().First()
	if err := checkFileArg(c.Name, what, arg); err != nil {
		return "", usageError{err}
	}
	return arg, nil
}

// checkFileArg says what is wrong with the file argument in the user's
// words: a missing file or a folder given for a file, not a bare stat error.
func checkFileArg(cmd, what, arg string) error {
	fi, err := os.Stat(arg)
	switch {
	case errors.Is(err, os.ErrNotExist):
		msg := fmt.Sprintf("%s: %s: no such file; give the path of the %s", cmd, arg, what)
		if strings.HasSuffix(what, ".yaml") {
			msg += " (e.g. experiments/quickstart.yaml)"
		}
		return errors.New(msg)
	case err != nil:
		return fmt.Errorf("%s: %w", cmd, err)
	case fi.IsDir():
		msg := fmt.Sprintf("%s: %s is a folder; give one %s file", cmd, arg, what)
		if ms, _ := filepath.Glob(filepath.Join(arg, "*.y*ml")); len(ms) > 0 {
			if len(ms) > 5 {
				ms = append(ms[:5], "…")
			}
			msg += " (in it: " + strings.Join(ms, ", ") + ")"
		}
		return errors.New(msg)
	}
	return nil
}

func options(reg *stage.Registry, st *store.Store) executor.Options {
	self, _ := os.Executable()
	return executor.Options{Store: st, Registry: reg, GsimVersion: version(), Gsim: self, SlotDir: executor.DefaultSlotDir()}
}

// experimentRun is what run and status start from: the experiment
// (with --set), its store, and where the store was found.
type experimentRun struct {
	path string
	plan *plan.Plan
	opt  executor.Options
	loc  store.Location
	cwd  string
}

// loadExperiment reads the command's EXPERIMENT.yaml (with --set) and finds
// the store, making nothing: run makes it once the request is checked.
func loadExperiment(c *cli.Command) (*experimentRun, error) {
	path, err := oneArg(c, "EXPERIMENT.yaml")
	if err != nil {
		return nil, err
	}
	reg := kinds.Registry()
	p, err := experiment.Load(path, experiment.Options{Sets: append(c.StringSlice("set"), slurmSets(c)...), Registry: reg})
	if err != nil {
		return nil, err
	}
	st, loc, cwd, err := openStore(c)
	if err != nil {
		return nil, err
	}
	return &experimentRun{path: path, plan: p, opt: options(reg, st), loc: loc, cwd: cwd}, nil
}

func runCmd(ctx context.Context, c *cli.Command) error {
	mode, err := progress.ParseMode(c.String("progress"))
	if err != nil {
		return usageError{err}
	}
	dry := c.Bool("dry-run")
	// The store is made only once the request is known to be good.
	x, err := loadExperiment(c)
	if err != nil {
		return err
	}
	p, opt := x.plan, x.opt
	opt.Jobs = c.Int("jobs")
	gpuLine, err := gpuSlots(c, p, &opt)
	if err != nil {
		return err
	}
	gpuLine, localGPUs, err := executorOptions(c, &opt, gpuLine)
	if err != nil {
		return err
	}
	opt.Force = c.StringSlice("force")
	opt.Only = c.StringSlice("only")
	opt.KeepGoing = c.Bool("keep-going")
	opt.Verify = c.Bool("verify")
	opt.Subprocess = c.Bool("subprocess")
	opt.SkipPreflight = c.Bool("no-preflight")
	out := c.Root().Writer
	if dry {
		ds, err := executor.Explain(p, opt)
		if err != nil {
			return err
		}
		printStore(c, x.loc, x.cwd, false)
		if gpuLine != "" {
			fmt.Fprintln(out, gpuLine)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		where := placement(c, p, opt.Registry)
		for _, d := range ds {
			line := d.DryRunLine()
			if w := where[d.ID]; w != "" && d.Run {
				line += "; " + w
			}
			fmt.Fprintf(tw, "%s\t%s\n", d.ID, line)
		}
		return tw.Flush()
	}
	prep, err := executor.Prepare(p, opt)
	if err != nil {
		return err
	}
	if opt.Store, err = store.Open(x.loc.Root); err != nil {
		return err
	}
	printStore(c, x.loc, x.cwd, true)
	if gpuLine != "" {
		fmt.Fprintln(out, gpuLine)
	}
	disp := progress.NewMode(os.Stderr, mode)
	opt.Display = disp
	done, err := useExecutor(c, p, &opt, disp, localGPUs)
	if err != nil {
		disp.Close()
		return err
	}
	sum, err := prep.Run(ctx, opt)
	said := done()
	disp.Close()
	if said != "" {
		fmt.Fprintln(out, said)
	}
	if sum != nil {
		sum.Print(out)
		printAnswer(out, x, sum)
	}
	return err
}

func statusCmd(ctx context.Context, c *cli.Command) error {
	x, err := loadExperiment(c)
	if err != nil {
		return err
	}
	opt := x.opt
	opt.Verify = c.Bool("verify")
	ds, err := executor.Explain(x.plan, opt)
	if err != nil {
		return err
	}
	printStore(c, x.loc, x.cwd, false)
	tw := tabwriter.NewWriter(c.Root().Writer, 0, 0, 2, ' ', 0)
	corrupt := 0
	jobs := jobNotes(ctx, opt.Store, ds)
	for _, d := range ds {
		line := d.StatusLine()
		if j := jobs[d.ID]; j != "" {
			line += "; " + j
		}
		fmt.Fprintf(tw, "%s\t%s\n", d.ID, line)
		if d.State == executor.Corrupt {
			corrupt++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if corrupt > 0 {
		return cli.Exit(fmt.Sprintf("%d corrupt outputs; `gsim run --verify %s` reruns them", corrupt, x.path), exitFailure)
	}
	return nil
}

func dagCmd(_ context.Context, c *cli.Command) error {
	path, err := oneArg(c, "EXPERIMENT.yaml")
	if err != nil {
		return err
	}
	p, err := experiment.Load(path, experiment.Options{Sets: c.StringSlice("set")})
	if err != nil {
		return err
	}
	switch f := c.String("format"); f {
	case "text", "dot", "mermaid":
		return dag.Render(p, f, c.Root().Writer)
	default:
		return usageError{fmt.Errorf("dag --format %s: want text, dot or mermaid", f)}
	}
}

func validateCmd(_ context.Context, c *cli.Command) error {
	path, err := oneArg(c, "EXPERIMENT.yaml")
	if err != nil {
		return err
	}
	p, err := experiment.Load(path, experiment.Options{Sets: c.StringSlice("set"), Registry: kinds.Registry()})
	if err != nil {
		return err
	}
	if _, err := dag.Build(p); err != nil {
		return usageError{err}
	}
	fmt.Fprintf(c.Root().Writer, "%s: ok (experiment %s, %d stage instances)\n", path, p.Name, len(p.Instances))
	return nil
}

func cleanCmd(_ context.Context, c *cli.Command) error {
	if c.NArg() != 0 {
		return usageError{errors.New("clean takes no arguments; it cleans the whole store (--store)")}
	}
	loc, _, err := locateStore(c)
	if err != nil {
		return err
	}
	if !loc.Exists {
		if _, err := os.Stat(loc.Root); err == nil {
			// A folder that is no store: clean removes nothing there.
			_, err := store.OpenExisting(loc.Root)
			return usageError{err}
		}
		// Nothing to clean, and clean must not make a store to find that out.
		fmt.Fprintf(c.Root().Writer, "no gsim store at %s (%s); nothing to clean\n", loc.Root, loc.Source)
		return nil
	}
	st, err := store.OpenExisting(loc.Root)
	if err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	if !dry {
		if n := executor.EndOrphans(st, true); n > 0 {
			fmt.Fprintf(c.Root().Writer, "ended %d process(es) left running by killed gsim runs\n", n)
		}
	}
	rep, err := st.Clean(dry)
	if err != nil {
		return err
	}
	verb := "removed"
	if dry {
		verb = "would remove"
	}
	for _, it := range rep.Items {
		rel, _ := filepath.Rel(st.Root, it.Path)
		fmt.Fprintf(c.Root().Writer, "%s %s (%s, %s)\n", verb, rel, it.Why, bytes(it.Bytes))
	}
	fmt.Fprintf(c.Root().Writer, "%s %d items, %s\n", verb, len(rep.Items), bytes(rep.Bytes))
	for _, l := range rep.Links {
		fmt.Fprintf(c.Root().Writer, "kept %s: it is a symbolic link, and clean never follows a link out of the store\n", l)
	}
	if rep.InUse {
		fmt.Fprintln(c.Root().Writer, "a gsim run is using this store: kept its objects, links and failed attempts; run gsim clean again after it ends")
	}
	return nil
}

func stageExecCmd(ctx context.Context, c *cli.Command) error {
	spec, err := oneArg(c, "SPEC.json")
	if err != nil {
		return err
	}
	self, _ := os.Executable()
	return executor.ExecSpec(ctx, kinds.Registry(), spec, os.Stdout, self)
}

func bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// version is the module version and VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev + modified + ")"
	}
	return v
}
