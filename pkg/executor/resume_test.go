package executor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gsim-dev/gsim/pkg/plan"
	"github.com/gsim-dev/gsim/pkg/stage"
	"github.com/gsim-dev/gsim/pkg/store"
)

// resumingLauncher plays a batch system whose job for one key finished
// while no gsim watched it: Resumable hands back that job's folder and
// Launch, given it, only follows the job.
type resumingLauncher struct {
	mu       sync.Mutex
	folders  map[string]string // key -> staging of a job that ended
	launched map[string]string // instance -> spec.OutDir
	settled  map[string]string // key -> staging
	fail     bool
}

func (l *resumingLauncher) Resumable(key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.folders[key]
}

func (l *resumingLauncher) Settled(key, staging string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settled[key] = staging
	delete(l.folders, key)
}

func (l *resumingLauncher) Launch(ctx context.Context, k stage.Kind, spec *stage.Spec, specPath string, env stage.Env) error {
	l.mu.Lock()
	l.launched[spec.Instance] = spec.OutDir
	resumed := l.folders[spec.Key] == spec.OutDir
	l.mu.Unlock()
	if l.fail {
		return errors.New("job FAILED")
	}
	if resumed {
		return nil // the job wrote its outputs already
	}
	return k.Run(ctx, spec, env)
}

func TestResumeAdoptsAFinishedJob(t *testing.T) {
	_, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{inst("a", map[string]any{"value": 1})}}
	ds, err := Explain(p, opt)
	if err != nil {
		t.Fatal(err)
	}
	key := ds[0].Key
	// What a job left: its outputs and the spec it was started with.
	dir, err := opt.Store.NewStaging(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "out.txt"), []byte("from the job"), 0o644)
	os.WriteFile(filepath.Join(dir, stage.SpecFile), []byte(`{"written":"by the first gsim"}`), 0o644)
	l := &resumingLauncher{folders: map[string]string{key: dir}, launched: map[string]string{}, settled: map[string]string{}}
	opt.Launcher = l
	sum, err := Run(context.Background(), p, opt)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Entries[0].Outcome != Ran || l.launched["a"] != dir || l.settled[key] != dir {
		t.Fatalf("outcome %s, launched in %q, settled %v (want the job's folder %s)", sum.Entries[0].Outcome, l.launched["a"], l.settled, dir)
	}
	obj := opt.Store.ObjectDir(key)
	if b, _ := os.ReadFile(filepath.Join(obj, "out.txt")); string(b) != "from the job" {
		t.Errorf("object holds %q, not the job's output", b)
	}
	// The spec the job read was not rewritten under it.
	if b, _ := os.ReadFile(filepath.Join(obj, stage.SpecFile)); !strings.Contains(string(b), "first gsim") {
		t.Errorf("spec.json was rewritten: %s", b)
	}
}

func TestResumeSettlesAFailure(t *testing.T) {
	_, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{inst("a", map[string]any{"value": 1})}}
	l := &resumingLauncher{folders: map[string]string{}, launched: map[string]string{}, settled: map[string]string{}, fail: true}
	opt.Launcher = l
	sum, err := Run(context.Background(), p, opt)
	if !errors.Is(err, ErrStagesFailed) {
		t.Fatalf("want a failure, got %v", err)
	}
	key := sum.Entries[0].Key
	if l.settled[key] != l.launched["a"] || l.settled[key] == "" {
		t.Errorf("settled %v, launched %v", l.settled, l.launched)
	}
	if _, err := os.Stat(opt.Store.FailedLog(key)); err != nil {
		t.Errorf("failed attempt not kept: %v", err)
	}
}

// TestLocalRunRespectsJobRecords: a run without a batch launcher does not
// compute a key that a batch job of an earlier run may still be computing.
func TestLocalRunRespectsJobRecords(t *testing.T) {
	f, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{inst("a", map[string]any{"value": 1})}}
	ds, err := Explain(p, opt)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := opt.Store.NewStaging(ds[0].Key)
	if err := opt.Store.WriteJob(&store.Job{Key: ds[0].Key, System: "slurm", ID: "77", Staging: dir}); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), p, opt)
	if err == nil || !strings.Contains(err.Error(), "--executor slurm") || !strings.Contains(err.Error(), "scancel 77") || f.count("a") != 0 {
		t.Errorf("want a refusal naming the job, got %v (ran %d times)", err, f.count("a"))
	}
}

// TestLocalRunDropsDeadJobRecords: a record whose folder is gone (its
// output was committed, or cleaned) does not block a local run.
func TestLocalRunDropsDeadJobRecords(t *testing.T) {
	f, opt := setup(t)
	p := &plan.Plan{Name: "e", Instances: []*plan.Instance{inst("a", map[string]any{"value": 1})}}
	ds, _ := Explain(p, opt)
	if err := opt.Store.WriteJob(&store.Job{Key: ds[0].Key, System: "slurm", ID: "77", Staging: filepath.Join(opt.Store.Root, "staging", "gone")}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), p, opt); err != nil || f.count("a") != 1 {
		t.Fatalf("run: %v (ran %d times)", err, f.count("a"))
	}
	if j, _ := opt.Store.ReadJob(ds[0].Key); j != nil {
		t.Error("the dead record was kept")
	}
}
