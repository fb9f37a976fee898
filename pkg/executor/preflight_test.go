package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// needy is a kind whose instances need params.need on the machine; the
// needs in missing are absent. It counts its Preflight calls per need.
type needy struct {
	*fake
	name    string
	missing map[string]bool
	mu      sync.Mutex
	calls   map[string]int
}

func (k *needy) Name() string { return k.name }
func (k *needy) PreflightKey(params map[string]any, _ string) string {
	s, _ := params["need"].(string)
	return s
}
func (k *needy) Preflight(_ context.Context, params map[string]any, _ string) error {
	need := k.PreflightKey(params, "")
	k.mu.Lock()
	k.calls[need]++
	k.mu.Unlock()
	if k.missing[need] {
		return fmt.Errorf("%s is not installed", need)
	}
	return nil
}

var _ stage.Preflighter = (*needy)(nil)

func needyInst(kind, id, need string, needs ...string) *plan.Instance {
	in := inst(id, map[string]any{"need": need, "value": id}, needs...)
	in.Kind = kind
	return in
}

// TestPreflightReportsAllBeforeAnyStage: what the planned instances lack is
// reported at once, one check per kind and need, before anything starts;
// instances that will not run (up to date) need nothing.
func TestPreflightReportsAllBeforeAnyStage(t *testing.T) {
	f, opt := setup(t)
	gpu := &needy{fake: f, name: "gpu-kind", missing: map[string]bool{"torch": true}, calls: map[string]int{}}
	vid := &needy{fake: f, name: "vidur-kind", missing: map[string]bool{"vidur": true}, calls: map[string]int{}}
	opt.Registry = stage.NewRegistry(f, gpu, vid)
	opt.KeepGoing = true
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{
		inst("w", map[string]any{"value": "w"}),
		needyInst("gpu-kind", "bench[rate=1]", "torch", "w"),
		needyInst("gpu-kind", "bench[rate=2]", "torch", "w"),
		needyInst("gpu-kind", "prof", "torch"),
		needyInst("vidur-kind", "vidur", "vidur", "w"),
		needyInst("vidur-kind", "other", "numpy", "w"),
	}}
	sum, err := Run(context.Background(), p, opt)
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PreflightError, got %v", err)
	}
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Errorf("a preflight failure should exit as an impossible request (UsageError): %T", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"gpu-kind (bench[rate=1], bench[rate=2], prof): torch is not installed",
		"vidur-kind (vidur): vidur is not installed",
		"--no-preflight",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "numpy") {
		t.Errorf("a need that is there is reported:\n%s", msg)
	}
	if sum != nil && len(sum.Entries) > 0 || f.count("w") != 0 {
		t.Errorf("stages started before the preflight failed: summary %v, w ran %d times", sum, f.count("w"))
	}
	if gpu.calls["torch"] != 1 || vid.calls["vidur"] != 1 || vid.calls["numpy"] != 1 {
		t.Errorf("checks per need: %v %v, want one each", gpu.calls, vid.calls)
	}

	// With the option set, stages start (and fail on their own terms).
	opt.SkipPreflight = true
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatalf("run without preflight: %v", err)
	}
	// Now everything is up to date: nothing will run, so nothing is checked.
	opt.SkipPreflight = false
	gpu.calls, vid.calls = map[string]int{}, map[string]int{}
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatalf("up-to-date run: %v", err)
	}
	if len(gpu.calls)+len(vid.calls) != 0 {
		t.Errorf("up-to-date instances were checked: %v %v", gpu.calls, vid.calls)
	}
	// Forcing one instance checks its need only; --only another kind's
	// stage checks nothing of the first.
	opt.Force = []string{"vidur"}
	if _, err := Run(context.Background(), p, opt); !errors.As(err, &pe) || len(pe.Problems) != 1 || gpu.calls["torch"] != 0 {
		t.Errorf("forced vidur: %v (gpu checks %v)", err, gpu.calls)
	}
	opt.Force, opt.Only = []string{"all"}, []string{"other"}
	vid.calls = map[string]int{}
	if _, err := Run(context.Background(), p, opt); err != nil || vid.calls["vidur"] != 0 || gpu.calls["torch"] != 0 {
		t.Errorf("--only other: %v (checks %v %v)", err, gpu.calls, vid.calls)
	}
}
