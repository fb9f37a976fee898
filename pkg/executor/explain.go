package executor

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/store"
)

// State words of `gsim status`.
const (
	UpToDate = "up-to-date"
	Stale    = "stale"
	Missing  = "missing"
	Failed   = "failed"
	Corrupt  = "corrupt"
	Error    = "error"
)

// Decision is what a run would do with one instance and why.
type Decision struct {
	ID  string
	Key string // empty while an upstream must run first
	// State and Detail are status's view: "stale" + "param with.rate 2 → 4".
	State  string
	Detail string
	// Run and Reason are the dry run's view: run (Reason) or skip.
	Run    bool
	Reason string
	// Err is why the key could not be computed (State Error).
	Err error
}

// StatusLine renders the decision as `gsim status` prints it.
func (d Decision) StatusLine() string {
	if d.Detail == "" {
		return d.State
	}
	return fmt.Sprintf("%s (%s)", d.State, d.Detail)
}

// DryRunLine renders the decision as `gsim run --dry-run` prints it.
func (d Decision) DryRunLine() string {
	if !d.Run {
		return "skip (up to date)"
	}
	return fmt.Sprintf("run (%s)", d.Reason)
}

// Explain decides, without running anything, what a run with opt would do
// with each selected instance and what status each instance has.
func Explain(p *plan.Plan, opt Options) ([]Decision, error) {
	g, err := newGraph(p, &opt)
	if err != nil {
		return nil, err
	}
	useCaches(p, opt.Store)
	ds := g.decideAll(&opt, true, nil)
	_ = opt.Store.SaveTrust()
	var out []Decision
	for _, n := range g.nodes {
		if n.selected {
			out = append(out, ds[n])
		}
	}
	return out, nil
}

// decide is the one place that says whether an instance is up to date; a
// run, a dry run and status all ask it, so they never disagree. With every
// input done it computes n's key, checks the object (rehashing it under
// Verify) and, when nothing must run, marks n done with its output digest
// so that its dependents can compute their keys. An instance that must run
// gets mustRun (forced, or corrupt under Verify: a complete object that
// does not satisfy it) and stale (the object such a rerun replaces).
func (g *graph) decide(n *node, opt *Options) Decision {
	d := Decision{ID: n.inst.ID}
	n.decided = true
	if up := g.upstreamPending(n); up != nil {
		d.Run, d.Reason = true, "after upstream"
		if n.forced {
			d.Reason = "forced"
		}
		d.State, d.Detail = Missing, ""
		if _, linked := opt.Store.Linked(g.p.Name, n.inst.ID); linked {
			d.State, d.Detail = Stale, fmt.Sprintf("upstream %s is not up to date", up.inst.ID)
		}
		return d
	}
	if n.key == "" {
		if err := g.computeKey(n); err != nil {
			d.Run, d.Reason, d.Err = true, "error: "+err.Error(), err
			d.State, d.Detail = Error, err.Error()
			return d
		}
	}
	d.Key = n.key
	c := opt.Store.Check(n.key)
	if c.Complete {
		d.State = UpToDate
		if opt.Verify {
			probs, err := opt.Store.Verify(n.key)
			if err != nil || len(probs) > 0 {
				d.State, d.Detail = Corrupt, problemText(probs, err)
				d.Run, d.Reason = true, "corrupt: "+d.Detail
				n.mustRun, n.stale = true, c.Manifest
				return d
			}
		}
		if n.forced {
			d.Run, d.Reason = true, "forced"
			n.mustRun, n.stale = true, c.Manifest
			return d
		}
		// Only an instance that will not rerun lets its dependents know
		// their keys now.
		n.digest = c.Manifest.OutputDigest
		n.state = done
		return d
	}
	d.Run = true
	n.mustRun = n.forced
	switch linkedKey, linked := opt.Store.Linked(g.p.Name, n.inst.ID); {
	case c.Damaged:
		d.State, d.Detail = Corrupt, c.Problem
	case c.Exists:
		d.State, d.Detail = Stale, "output "+c.Problem
	case linked && linkedKey != n.key:
		old, err := store.ReadManifest(opt.Store.ObjectDir(linkedKey))
		if err != nil {
			d.State, d.Detail = Stale, "parameters or inputs changed"
		} else {
			d.State, d.Detail = Stale, strings.Join(staleReasons(n.keyIn, old), "; ")
		}
	default:
		d.State = Missing
	}
	d.Reason = d.State
	if d.Detail != "" {
		d.Reason += ": " + d.Detail
	}
	if n.forced {
		d.Reason = "forced"
	}
	if d.State != Corrupt {
		if _, err := os.Stat(opt.Store.FailedLog(n.key)); err == nil {
			d.State, d.Detail = Failed, "log: "+opt.Store.FailedLog(n.key)
			if !n.forced {
				d.Reason = "failed last time, log: " + opt.Store.FailedLog(n.key)
			}
		}
	}
	return d
}

func problemText(probs []store.Problem, err error) string {
	if err != nil {
		return err.Error()
	}
	s := make([]string, len(probs))
	for i, p := range probs {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// staleReasons compares what the key would be made of now with the manifest
// of the object the instance's runs/ link points to.
func staleReasons(cur store.KeyInput, old *store.Manifest) []string {
	var out []string
	add := func(s string) {
		for _, x := range out {
			if x == s {
				return
			}
		}
		out = append(out, s)
	}
	if cur.Kind != old.Kind {
		add(fmt.Sprintf("kind %s → %s", old.Kind, cur.Kind))
	}
	if cur.Version != old.Version {
		add("runner code changed")
	}
	labels := map[string]bool{}
	for k := range cur.Fingerprint {
		labels[k] = true
	}
	for k := range old.Fingerprint {
		labels[k] = true
	}
	for _, l := range sortedKeys(labels) {
		if cur.Fingerprint[l] == old.Fingerprint[l] {
			continue
		}
		if strings.HasPrefix(l, "runner") {
			add("runner code changed")
		} else {
			add(l + " changed")
		}
	}
	add2 := paramDiff(cur.Params, old.Params)
	for _, s := range add2 {
		add(s)
	}
	oldIn := map[string][]store.InputRef{}
	var needOrder []string
	for _, r := range old.Inputs {
		oldIn[r.Need] = append(oldIn[r.Need], r)
	}
	curIn := map[string][]store.InputRef{}
	for _, r := range cur.Inputs {
		if _, seen := curIn[r.Need]; !seen {
			needOrder = append(needOrder, r.Need)
		}
		curIn[r.Need] = append(curIn[r.Need], r)
	}
	for n := range oldIn {
		if _, ok := curIn[n]; !ok {
			needOrder = append(needOrder, n)
		}
	}
	for _, need := range needOrder {
		a, b := curIn[need], oldIn[need]
		same := len(a) == len(b)
		for i := 0; same && i < len(a); i++ {
			same = a[i].Instance == b[i].Instance && a[i].Digest == b[i].Digest
		}
		if !same {
			add("input " + need + " changed")
		}
	}
	if len(out) == 0 {
		add("key changed")
	}
	return out
}

// paramDiff lists changed leaves as "param with.a.b OLD → NEW".
func paramDiff(cur, old map[string]any) []string {
	a, b := map[string]string{}, map[string]string{}
	flatten("", cur, a)
	flatten("", old, b)
	paths := map[string]bool{}
	for k := range a {
		paths[k] = true
	}
	for k := range b {
		paths[k] = true
	}
	var out []string
	for _, p := range sortedKeys(paths) {
		x, okx := a[p]
		y, oky := b[p]
		if okx && oky && x == y {
			continue
		}
		if !oky {
			y = "(unset)"
		}
		if !okx {
			x = "(unset)"
		}
		if len(x) > 40 || len(y) > 40 {
			// Scripts and long strings do not fit a status line.
			out = append(out, fmt.Sprintf("param with.%s changed", p))
			continue
		}
		out = append(out, fmt.Sprintf("param with.%s %s → %s", p, y, x))
	}
	return out
}

func flatten(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && prefix != "" {
			out[prefix] = "{}"
		}
		for k, e := range x {
			flatten(join(k), e, out)
		}
	case []any:
		if len(x) == 0 {
			out[prefix] = "[]"
		}
		for i, e := range x {
			flatten(join(fmt.Sprint(i)), e, out)
		}
	default:
		s := store.FormatValue(v)
		// Strings read better unquoted unless quoting is needed to see them.
		if str, ok := v.(string); ok && str != "" && !strings.ContainsAny(str, " \t\n\"") {
			s = str
		}
		out[prefix] = s
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
