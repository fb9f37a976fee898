package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/gpus"
	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// gpuFake holds params.gpu devices for params.sleep_ms and records which
// devices each instance was given and when.
type gpuFake struct {
	stage.Base
	mu   sync.Mutex
	uses []use
	// together, when set, holds each of the first `together` stages until
	// that many run at once (or a few seconds pass), so a test sees them
	// side by side however loaded the machine is.
	together int
	started  int
	all      chan struct{}
}

type use struct {
	id         string
	devs       []string
	start, end time.Time
}

func (*gpuFake) Name() string    { return "gpufake" }
func (*gpuFake) Version() string { return "1" }
func (*gpuFake) Resources(p map[string]any) map[string]int {
	return map[string]int{"gpu": p["gpu"].(int)}
}
func (f *gpuFake) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	start := time.Now()
	if f.together > 0 {
		f.mu.Lock()
		if f.all == nil {
			f.all = make(chan struct{})
		}
		f.started++
		if f.started == f.together {
			close(f.all)
		}
		all := f.all
		f.mu.Unlock()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
		}
	}
	time.Sleep(time.Duration(spec.Params["sleep_ms"].(int)) * time.Millisecond)
	f.mu.Lock()
	f.uses = append(f.uses, use{spec.Instance, append([]string(nil), env.GPUs...), start, time.Now()})
	f.mu.Unlock()
	return os.WriteFile(filepath.Join(spec.OutDir, "out.txt"), []byte(spec.Instance), 0o644)
}

func devices(ids ...string) []gpus.Device {
	out := make([]gpus.Device, len(ids))
	for i, id := range ids {
		out[i] = gpus.Device{ID: id, UUID: "GPU-" + id}
	}
	return out
}

func gpuPlan(name string, n, gpu, sleepMS int) *plan.Plan {
	p := &plan.Plan{Name: name}
	for i := 0; i < n; i++ {
		p.Instances = append(p.Instances, &plan.Instance{ID: fmt.Sprintf("%s[i=%d]", name, i), Stage: name, Kind: "gpufake",
			Params: map[string]any{"gpu": gpu, "sleep_ms": sleepMS, "i": i, "name": name}})
	}
	return p
}

// checkNoSharing fails if two uses of one device overlap in time.
func checkNoSharing(t *testing.T, uses []use) {
	t.Helper()
	for i, a := range uses {
		for _, b := range uses[i+1:] {
			if !(a.start.Before(b.end) && b.start.Before(a.end)) {
				continue
			}
			for _, d := range a.devs {
				for _, e := range b.devs {
					if d == e {
						t.Errorf("%s and %s shared device %s at once", a.id, b.id, d)
					}
				}
			}
		}
	}
}

// Each GPU stage runs on its own device, and all devices are used.
func TestEachGPUSlotIsADevice(t *testing.T) {
	f := &gpuFake{together: 3}
	st, _ := store.Open(t.TempDir())
	opt := Options{Store: st, Registry: stage.NewRegistry(f), Jobs: 8, SlotDir: t.TempDir(),
		Devices: map[string][]gpus.Device{"gpu": devices("0", "2", "3")}}
	if _, err := Run(context.Background(), gpuPlan("g", 6, 1, 150), opt); err != nil {
		t.Fatal(err)
	}
	if len(f.uses) != 6 {
		t.Fatalf("%d runs", len(f.uses))
	}
	used := map[string]bool{}
	for _, u := range f.uses {
		if len(u.devs) != 1 {
			t.Errorf("%s got devices %v, want one", u.id, u.devs)
		}
		for _, d := range u.devs {
			used[d] = true
		}
	}
	if len(used) != 3 || !used["0"] || !used["2"] || !used["3"] {
		t.Errorf("devices used: %v, want 0, 2 and 3", used)
	}
	checkNoSharing(t, f.uses)
}

// A stage needing k GPUs gets k distinct devices at once, or waits.
func TestKGPURequests(t *testing.T) {
	f := &gpuFake{}
	st, _ := store.Open(t.TempDir())
	opt := Options{Store: st, Registry: stage.NewRegistry(f), Jobs: 8, SlotDir: t.TempDir(),
		Devices: map[string][]gpus.Device{"gpu": devices("0", "1", "2")}}
	p := gpuPlan("two", 3, 2, 120)
	one := gpuPlan("one", 3, 1, 120)
	p.Instances = append(p.Instances, one.Instances...)
	if _, err := Run(context.Background(), p, opt); err != nil {
		t.Fatal(err)
	}
	for _, u := range f.uses {
		want := 1
		if strings.HasPrefix(u.id, "two") {
			want = 2
		}
		if len(u.devs) != want || want == 2 && u.devs[0] == u.devs[1] {
			t.Errorf("%s got %v, want %d distinct devices", u.id, u.devs, want)
		}
	}
	checkNoSharing(t, f.uses)
	// Asking for more than there are is refused before anything runs.
	_, err := Run(context.Background(), gpuPlan("four", 1, 4, 1), opt)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "needs 4 gpu but only 3") {
		t.Errorf("got %v", err)
	}
}

// Two runs (as two gsim processes: the locks are per open file, so two
// runs in one process contend as two processes do) whose device lists
// overlap never put two stages on the shared device, even when they list
// it by index in one and at another position in the other.
func TestDeviceLocksAcrossRuns(t *testing.T) {
	f := &gpuFake{}
	slots := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	lists := [][]gpus.Device{devices("0", "1"), devices("1", "2")}
	for i := range lists {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, _ := store.Open(t.TempDir())
			opt := Options{Store: st, Registry: stage.NewRegistry(f), Jobs: 4, SlotDir: slots,
				Devices: map[string][]gpus.Device{"gpu": lists[i]}}
			// Listed second in run 0, first in run 1: both reach for it.
			_, errs[i] = Run(context.Background(), gpuPlan(fmt.Sprintf("r%d", i), 4, 1, 100), opt)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkNoSharing(t, f.uses)
	byRun := map[string]map[string]bool{}
	for _, u := range f.uses {
		r := u.id[:2]
		if byRun[r] == nil {
			byRun[r] = map[string]bool{}
		}
		for _, d := range u.devs {
			byRun[r][d] = true
		}
	}
	for r, ds := range byRun {
		var got []string
		for d := range ds {
			got = append(got, d)
		}
		sort.Strings(got)
		allowed := map[string]string{"r0": "0 1", "r1": "1 2"}[r]
		for _, d := range got {
			if !strings.Contains(allowed, d) {
				t.Errorf("run %s used device %s outside its list %s", r, d, allowed)
			}
		}
	}
}

// Without devices (no GPU visible) slots are counters and stages get no
// device list, as before.
func TestCounterSlotsGiveNoDevices(t *testing.T) {
	f := &gpuFake{}
	st, _ := store.Open(t.TempDir())
	opt := Options{Store: st, Registry: stage.NewRegistry(f), Jobs: 4, SlotDir: t.TempDir(), Slots: map[string]int{"gpu": 2}}
	if _, err := Run(context.Background(), gpuPlan("c", 3, 1, 50), opt); err != nil {
		t.Fatal(err)
	}
	for _, u := range f.uses {
		if len(u.devs) != 0 {
			t.Errorf("%s got devices %v from counter slots", u.id, u.devs)
		}
	}
}
