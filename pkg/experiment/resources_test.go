package experiment_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/plan"
)

func loadString(t *testing.T, yaml string, sets ...string) (*plan.Plan, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return experiment.Load(path, experiment.Options{Sets: sets, Registry: testRegistry()})
}

func ptr[T any](v T) *T { return &v }

// TestResourcesDecode: what executor.slurm and resources: turn into, with
// times and memory written the way sbatch reads them.
func TestResourcesDecode(t *testing.T) {
	p, err := loadString(t, `
name: r
matrix: {rate: [1, 2]}
executor:
  slurm:
    submit: all
    retries: 3
    poll: 2s
    gsim: /shared/bin/gsim
    partition: gpu
    account: proj-1
    qos: normal
    time: 2h
    mem: 32GB
    cpus: 8
    gpu_type: h100
    constraint: "h100&ib"
    sbatch: ["--exclusive"]
stages:
  gen:
    uses: shell
    with: {run: "echo ${{ matrix.rate }}"}
  bench:
    uses: shell
    needs: [gen]
    with: {run: "true"}
    resources: {job: false, time: 90, mem: 4000, gpus: 2, sbatch: ["--mail-type=FAIL"]}
`, "stages.gen.resources.time=1-12", "executor.slurm.qos=high")
	if err != nil {
		t.Fatal(err)
	}
	want := plan.Slurm{
		Submit: plan.SubmitAll, Retries: ptr(3), Poll: 2 * time.Second, Gsim: "/shared/bin/gsim",
		Defaults: plan.Resources{Partition: "gpu", Account: "proj-1", QOS: "high", Time: "02:00:00", Mem: "32G",
			CPUs: ptr(8), GPUType: "h100", Constraint: "h100&ib", Sbatch: []string{"--exclusive"}},
	}
	if !reflect.DeepEqual(p.Slurm, want) {
		t.Errorf("slurm:\n got %+v\nwant %+v", p.Slurm, want)
	}
	for _, in := range p.Instances {
		switch in.Stage {
		case "gen":
			if in.Resources.Time != "1-12:00:00" {
				t.Errorf("%s time %q (from --set)", in.ID, in.Resources.Time)
			}
		case "bench":
			r := in.Resources.Over(p.Slurm.Defaults)
			if *r.Job || r.Time != "01:30:00" || r.Mem != "4000M" || *r.GPUs != 2 || *r.CPUs != 8 || r.Partition != "gpu" ||
				!reflect.DeepEqual(r.Sbatch, []string{"--exclusive", "--mail-type=FAIL"}) {
				t.Errorf("%s merged resources %+v", in.ID, r)
			}
		}
	}
}

func TestSlurmTimeForms(t *testing.T) {
	for in, want := range map[string]string{
		"30":          "00:30:00",
		"\"5:30\"":    "00:05:30",
		"\"1:30:00\"": "01:30:00",
		"2-3":         "2-03:00:00",
		"2-3:04":      "2-03:04:00",
		"2-3:04:05":   "2-03:04:05",
		"90m":         "01:30:00",
		"1h30m":       "01:30:00",
		"1d":          "1-00:00:00",
		"45s":         "00:00:45",
		"unlimited":   "UNLIMITED",
	} {
		p, err := loadString(t, "name: t\nexecutor: {slurm: {time: "+in+"}}\nstages: {a: {uses: shell, with: {run: x}}}\n")
		if err != nil {
			t.Errorf("time %s: %v", in, err)
			continue
		}
		if p.Slurm.Defaults.Time != want {
			t.Errorf("time %s = %q, want %q", in, p.Slurm.Defaults.Time, want)
		}
	}
	for _, in := range []string{"1.5", "\"1:60\"", "1y", "\"\"", "true", "0m"} {
		_, err := loadString(t, "name: t\nexecutor: {slurm: {time: "+in+"}}\nstages: {a: {uses: shell, with: {run: x}}}\n")
		if err == nil || !strings.Contains(err.Error(), "executor.slurm.time") {
			t.Errorf("time %s: want a positioned error, got %v", in, err)
		}
	}
}

// TestResourcesNotInKey: resources say where a stage runs, not what it
// computes, so the plan's params (what keys hash) do not see them.
func TestResourcesNotInKey(t *testing.T) {
	a, err := loadString(t, "name: t\nstages: {a: {uses: shell, with: {run: x}}}\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadString(t, "name: t\nstages: {a: {uses: shell, with: {run: x}, resources: {time: 1h}}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Instances[0].Params, b.Instances[0].Params) {
		t.Errorf("params differ: %v vs %v", a.Instances[0].Params, b.Instances[0].Params)
	}
}
