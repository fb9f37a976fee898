// Package executor runs a plan on this machine: instances in dependency
// order, up to Jobs at once, within resource slots (so GPU stages never
// overlap), skipping every instance whose keyed output is already complete.
//
// Guarantees: an instance starts only after all its inputs are complete
// objects; nothing of a failed or cancelled attempt is adopted; a key runs
// at most once at a time across processes sharing the store (per-key lock);
// dependents of a failed instance never start.
package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gsim-dev/gsim/pkg/gpus"
	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/progress"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
	"github.com/gsim-dev/gsim/pkg/suggest"
)

// Options configure a run, a dry run or a status.
type Options struct {
	Store    *store.Store
	Registry *stage.Registry
	// Jobs is the most instances running at once (default: CPU count).
	Jobs int
	// Slots are resource capacities; "gpu" defaults to 1 and any other
	// resource a kind asks for defaults to 1.
	Slots map[string]int
	// Devices makes each slot of a resource one specific device: capacity
	// is the number of devices, and a stage holding slots is told their
	// ids (stage.Env.GPUs, which becomes CUDA_VISIBLE_DEVICES). It takes
	// effect with SlotDir, whose locks say which device is whose.
	Devices map[string][]gpus.Device
	// SlotDir holds the machine's resource slot locks, shared by every gsim
	// process that names it (DefaultSlotDir), so GPU stages of two runs never
	// overlap either; empty: slots count only this run's stages (as for a
	// Launcher that runs stages on other machines).
	SlotDir string
	// Force lists stage names whose instances run even if up to date, or "all".
	Force []string
	// Only restricts the run to these stages and their ancestors.
	Only []string
	// KeepGoing lets independent branches finish after a failure.
	KeepGoing bool
	// Verify rehashes complete outputs and reruns corrupt ones.
	Verify bool
	// Display gets progress events; nil discards them.
	Display progress.Display
	// GsimVersion is recorded in manifests.
	GsimVersion string
	// Gsim is the gsim binary, for kinds that re-invoke it and for Subprocess.
	Gsim string
	// Subprocess runs each stage as `gsim stage exec spec.json` instead of
	// in-process, the way a batch-system executor would.
	Subprocess bool
	// SkipPreflight starts stages without first asking their kinds
	// (stage.Preflighter) whether this machine has what they need.
	SkipPreflight bool
	// Launcher, if set, runs every attempt instead (e.g. submits
	// `gsim stage exec` to a batch system and waits). The executor still
	// owns keys, locks, staging, validation and adoption.
	Launcher Launcher
}

// Launcher runs one prepared attempt: spec.OutDir is an empty staging folder
// in the store holding spec.json (specPath), and env.Log is its stage.log.
// It returns when the stage has finished; a non-nil error fails the attempt.
type Launcher interface {
	Launch(ctx context.Context, k stage.Kind, spec *stage.Spec, specPath string, env stage.Env) error
}

// UsageError is a problem with the request itself (unknown stage in --only,
// a kind missing from the registry, impossible resources): exit code 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ErrStagesFailed is wrapped by the error Run returns when any stage failed.
var ErrStagesFailed = errors.New("stages failed")

func (o *Options) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return runtime.NumCPU()
}

func (o *Options) capacity(res string) int {
	if d, ok := o.Devices[res]; ok {
		return len(d)
	}
	if n, ok := o.Slots[res]; ok {
		return n
	}
	return 1
}

// devices are res's devices, nil when its slots are plain counters.
func (o *Options) devices(res string) []gpus.Device {
	return o.Devices[res]
}

func (o *Options) display() progress.Display {
	if o.Display == nil {
		return progress.NewPlain(io.Discard, time.Now, time.Hour)
	}
	return o.Display
}

// node is an instance with what the executor learns about it.
type node struct {
	inst      *plan.Instance
	kind      stage.Kind
	params    []byte // canonical JSON of inst.Params
	resources map[string]int
	forced    bool
	selected  bool

	key   string
	keyIn store.KeyInput
	// decided: the run has checked the object once; mustRun: it reruns
	// even if complete (forced, or corrupt under Verify); stale: the
	// object such a rerun replaces.
	decided bool
	mustRun bool
	stale   *store.Manifest
	digest  string // output digest once complete
	state   state
	// root is the failed instance that made this one skip.
	root string
}

type state int

const (
	pending state = iota
	running
	done
	failed
	skipped
)

type graph struct {
	p     *plan.Plan
	nodes []*node
	byID  map[string]*node
	// fp memoises fingerprints; decideAll asks from several goroutines.
	fpMu sync.Mutex
	fp   map[string]map[string]string
}

func newGraph(p *plan.Plan, opt *Options) (*graph, error) {
	g := &graph{p: p, byID: map[string]*node{}, fp: map[string]map[string]string{}}
	stages := map[string]bool{}
	for _, in := range p.Instances {
		stages[in.Stage] = true
	}
	if err := checkStageNames("--only", opt.Only, stages, false); err != nil {
		return nil, err
	}
	if err := checkStageNames("--force", opt.Force, stages, true); err != nil {
		return nil, err
	}
	forceAll := contains(opt.Force, "all")
	resources := map[string]map[string]int{}
	var errs []error
	for _, in := range p.Instances {
		k, ok := opt.Registry.Lookup(in.Kind)
		if !ok {
			errs = append(errs, &UsageError{fmt.Sprintf("%s: unknown kind %q (known: %s)", in.ID, in.Kind, strings.Join(opt.Registry.Names(), ", "))})
			continue
		}
		pj, err := store.CanonicalJSON(in.Params)
		if err != nil {
			errs = append(errs, &UsageError{fmt.Sprintf("%s: params: %v", in.ID, err)})
			continue
		}
		// A matrix repeats params; kinds decode them to answer.
		mk := in.Kind + "\x00" + string(pj)
		res, ok := resources[mk]
		if !ok {
			res = k.Resources(in.Params)
			resources[mk] = res
		}
		n := &node{inst: in, kind: k, params: pj, resources: res, forced: forceAll || contains(opt.Force, in.Stage)}
		for res, need := range n.resources {
			if c := opt.capacity(res); need > c {
				errs = append(errs, &UsageError{fmt.Sprintf("%s needs %d %s but only %d are available; raise it (e.g. --gpus %d, on a machine with that many)", in.ID, need, res, c, need)})
			}
		}
		g.nodes = append(g.nodes, n)
		g.byID[in.ID] = n
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, n := range g.nodes {
		for _, d := range n.inst.Needs {
			for _, id := range d.Instances {
				if g.byID[id] == nil {
					return nil, &UsageError{fmt.Sprintf("%s needs %s, which is not in the plan", n.inst.ID, id)}
				}
			}
		}
	}
	g.selectOnly(opt.Only)
	return g, nil
}

func checkStageNames(flag string, names []string, stages map[string]bool, allowAll bool) error {
	for _, s := range names {
		if allowAll && s == "all" || stages[s] {
			continue
		}
		known := make([]string, 0, len(stages))
		for k := range stages {
			known = append(known, k)
		}
		sort.Strings(known)
		return &UsageError{fmt.Sprintf("%s %s: no such stage%s; stages: %s", flag, s, suggest.DidYouMean(s, known), strings.Join(known, ", "))}
	}
	return nil
}

// selectOnly marks the instances of the named stages and all their ancestors.
func (g *graph) selectOnly(only []string) {
	if len(only) == 0 {
		for _, n := range g.nodes {
			n.selected = true
		}
		return
	}
	// Instances are topologically ordered, so walking backwards marks every
	// ancestor before it is visited.
	for i := len(g.nodes) - 1; i >= 0; i-- {
		n := g.nodes[i]
		if contains(only, n.inst.Stage) {
			n.selected = true
		}
		if !n.selected {
			continue
		}
		for _, d := range n.inst.Needs {
			for _, id := range d.Instances {
				g.byID[id].selected = true
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// computeKey fills n.key from its kind, params, fingerprint and the output
// digests of its inputs, which must all be done.
func (g *graph) computeKey(n *node) error {
	fp, err := g.fingerprint(n)
	if err != nil {
		return err
	}
	if n.inst.Repeat > 1 {
		// A rerun of the same params and inputs is a run of its own; the
		// first repeat keeps the key of the unrepeated stage.
		fp = maps.Clone(fp)
		if fp == nil {
			fp = map[string]string{}
		}
		fp["repeat"] = n.inst.RepeatID
	}
	in := store.KeyInput{Kind: n.kind.Name(), Version: n.kind.Version(), Fingerprint: fp, Params: n.inst.Params, CanonicalParams: n.params}
	for _, d := range n.inst.Needs {
		for _, id := range d.Instances {
			up := g.byID[id]
			in.Inputs = append(in.Inputs, store.InputRef{Need: d.Stage, Instance: id, Key: up.key, Digest: up.digest})
		}
	}
	key, err := store.Key(in)
	if err != nil {
		return fmt.Errorf("%s: %w", n.inst.ID, err)
	}
	n.key, n.keyIn = key, in
	return nil
}

// fingerprint is memoised per kind and params: kinds hash runner folders and
// named files, and a matrix repeats the same params many times.
func (g *graph) fingerprint(n *node) (map[string]string, error) {
	ck := n.kind.Name() + "\x00" + string(n.params)
	g.fpMu.Lock()
	fp, ok := g.fp[ck]
	g.fpMu.Unlock()
	if ok {
		return fp, nil
	}
	fp, err := n.kind.Fingerprint(n.inst.Params, g.p.BaseDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.inst.ID, err)
	}
	g.fpMu.Lock()
	g.fp[ck] = fp
	g.fpMu.Unlock()
	return fp, nil
}

// upstreamPending returns the first input that is not done.
func (g *graph) upstreamPending(n *node) *node {
	for _, d := range n.inst.Needs {
		for _, id := range d.Instances {
			if up := g.byID[id]; up.state != done {
				return up
			}
		}
	}
	return nil
}

func (g *graph) spec(n *node, st *store.Store, outDir string) *stage.Spec {
	s := &stage.Spec{
		SchemaVersion:  stage.SpecVersion,
		Experiment:     g.p.Name,
		ExperimentFile: g.p.File,
		BaseDir:        g.p.BaseDir,
		Stage:          n.inst.Stage,
		Instance:       n.inst.ID,
		Kind:           n.inst.Kind,
		Key:            n.key,
		Params:         n.inst.Params,
		Matrix:         n.inst.Cell,
		Inputs:         map[string][]stage.Input{},
		OutDir:         outDir,
	}
	for _, d := range n.inst.Needs {
		for _, id := range d.Instances {
			up := g.byID[id]
			s.Inputs[d.Stage] = append(s.Inputs[d.Stage], stage.Input{
				Instance: id, Kind: up.inst.Kind, Holds: stage.HoldsOf(up.kind), Key: up.key, Dir: st.ObjectDir(up.key), Matrix: up.inst.Cell,
			})
		}
	}
	return s
}

// useCaches lets this run, dry run or status trust what the store
// remembers: files named by params by their signature across runs, as
// outputs are by size and mtime, and the manifests this experiment's
// objects had last time, unchanged (Store.Check still checks every output
// file). They are kept in the store only if there is one: a status or a dry
// run makes no store to remember them in.
func useCaches(p *plan.Plan, st *store.Store) {
	if store.IsStore(st.Root) {
		stage.UseDigestCache(st.CacheDir("digests"), st.Root)
	} else {
		stage.UseDigestCache("", st.Root)
	}
	st.UseTrust(p.Name)
}
