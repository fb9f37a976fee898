package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/kinds"
	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/results"
	"github.com/gsim-dev/gsim/pkg/store"
	"github.com/gsim-dev/gsim/pkg/suggest"
)

// printAnswer ends a run with where its answer is: each report stage that
// is complete after the run, its path and its verdict, and how to open it.
func printAnswer(w io.Writer, x *experimentRun, sum *executor.Summary) {
	st := x.opt.Store
	fmt.Fprintf(w, "outputs: %s\n", results.Rel(x.cwd, st.LinkDir(x.plan.Name)))
	kind := map[string]string{}
	for _, in := range x.plan.Instances {
		kind[in.ID] = in.Kind
	}
	var shown []results.Report
	for _, e := range sum.Entries {
		if kind[e.ID] != "report" {
			continue
		}
		switch e.Outcome {
		case executor.Ran, executor.UpToDateRun, executor.Reused:
			shown = append(shown, results.At(st, x.plan.Name, e.ID, kind[e.ID]))
		}
	}
	for _, r := range shown {
		label := "report"
		if len(shown) > 1 || r.Instance != "report" {
			label = "report " + r.Instance
		}
		fmt.Fprintf(w, "%s: %s\n", label, results.Rel(x.cwd, r.HTML))
		for _, v := range results.Verdict(r.Dir) {
			fmt.Fprintf(w, "  %s\n", v)
		}
	}
	if len(shown) > 0 {
		fmt.Fprintf(w, "open it: gsim open %s%s --browser\n", shellWord(x.path), storeArg(x.loc))
	}
}

// storeArg repeats --store in a suggested command when the store was named
// by it (a found or default store, or $GSIM_STORE, is found again).
func storeArg(loc store.Location) string {
	if loc.Source == store.FromFlag {
		return " --store " + shellWord(loc.Root)
	}
	return ""
}

// shellWord quotes s for a POSIX shell if it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./@+,:=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func openCmd(_ context.Context, c *cli.Command) error {
	if c.NArg() > 2 {
		return usageError{fmt.Errorf("open: want at most EXPERIMENT and REPORT, got %d arguments (see gsim open --help)", c.NArg())}
	}
	st, loc, cwd, err := openStore(c)
	if err != nil {
		return err
	}
	if !loc.Exists {
		return usageError{fmt.Errorf("open: no gsim store at %s (%s); run an experiment first (gsim run EXPERIMENT.yaml) or name the store with --store", loc.Root, loc.Source)}
	}
	name, p, err := openTarget(c, st)
	if err != nil {
		return err
	}
	rs, err := results.Find(st, name)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return usageError{fmt.Errorf("open: experiment %s has no reports in %s yet; run it (gsim run EXPERIMENT.yaml)", name, loc.Root)}
	}
	stale := staleReports(p, st)
	out := c.Root().Writer
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		note := ""
		if why, ok := stale[r.Instance]; ok {
			note = "  (" + why + ")"
		}
		fmt.Fprintf(tw, "%s\t%s%s\n", r.Instance, results.Rel(cwd, r.HTML), note)
		if r.Kind == "report" {
			for _, v := range results.Verdict(r.Dir) {
				fmt.Fprintf(tw, "\t  %s\n", v)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !c.Bool("browser") {
		return nil
	}
	pick := rs[0]
	if want := c.Args().Get(1); want != "" {
		var ok bool
		if pick, ok = pickReport(rs, want); !ok {
			ids := make([]string, len(rs))
			for i, r := range rs {
				ids[i] = r.Instance
			}
			return usageError{fmt.Errorf("open: %s has no report %q%s; reports: %s", name, want, suggest.DidYouMean(want, ids), strings.Join(ids, ", "))}
		}
	}
	fmt.Fprintf(out, "opening %s\n", results.FileURL(pick.HTML))
	return results.Open(pick)
}

// openTarget is the experiment `gsim open` shows: the YAML file given (its
// plan is returned too, to tell stale reports), an experiment name in the
// store, or the store's only experiment.
func openTarget(c *cli.Command, st *store.Store) (string, *plan.Plan, error) {
	exps, err := results.Experiments(st)
	if err != nil {
		return "", nil, err
	}
	arg := c.Args().First()
	if arg == "" {
		switch len(exps) {
		case 0:
			return "", nil, usageError{fmt.Errorf("open: no experiment has run in %s yet; run one (gsim run EXPERIMENT.yaml)", st.Root)}
		case 1:
			return exps[0], nil, nil
		}
		return "", nil, usageError{fmt.Errorf("open: %s holds several experiments; name one: %s", st.Root, strings.Join(exps, ", "))}
	}
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		p, err := experiment.Load(arg, experiment.Options{Sets: c.StringSlice("set"), Registry: kinds.Registry()})
		if err != nil {
			return "", nil, err
		}
		return p.Name, p, nil
	}
	for _, e := range exps {
		if e == arg {
			return e, nil, nil
		}
	}
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		return "", nil, usageError{checkFileArg("open", "EXPERIMENT.yaml", arg)}
	}
	return "", nil, usageError{fmt.Errorf("open: no experiment %q in %s%s; experiments: %s", arg, st.Root, suggest.DidYouMean(arg, exps), strings.Join(exps, ", "))}
}

// pickReport finds a report by instance id or by stage name (its first
// instance).
func pickReport(rs []results.Report, want string) (results.Report, bool) {
	for _, r := range rs {
		if r.Instance == want {
			return r, true
		}
	}
	for _, r := range rs {
		if stage, _, _ := strings.Cut(r.Instance, "["); stage == want {
			return r, true
		}
	}
	return results.Report{}, false
}

// staleReports says which report instances of p are not up to date (their
// link shows an older result), when the experiment file was given.
func staleReports(p *plan.Plan, st *store.Store) map[string]string {
	out := map[string]string{}
	if p == nil {
		return out
	}
	ds, err := executor.Explain(p, executor.Options{Store: st, Registry: kinds.Registry()})
	if err != nil {
		return out
	}
	for _, d := range ds {
		if d.State != executor.UpToDate {
			out[d.ID] = d.StatusLine() + ": an older result; gsim run updates it"
		}
	}
	return out
}
