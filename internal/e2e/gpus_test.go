package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gpuSweep: four GPU stages that record the devices they were given and
// when they held them.
const gpuSweep = `name: NAME
matrix:
  i: [1, 2, 3, 4]
stages:
  bench:
    uses: shell
    with:
      run: |
        # Run a's first stages wait (up to 10s) until two of them hold a GPU,
        # so the test sees them side by side however loaded the machine is.
        touch "$TESTDIR/started-NAME-$I"
        if [ NAME = a ]; then
          for k in $(seq 100); do [ "$(ls "$TESTDIR"/started-a-* | wc -l)" -ge 2 ] && break; sleep 0.1; done
        fi
        s=$(date +%s%N); sleep 0.4; e=$(date +%s%N)
        echo "NAME $GSIM_INSTANCE $CUDA_VISIBLE_DEVICES $s $e" >> "$TESTDIR/uses"
        echo ok > o.txt
      env: {I: "${{ matrix.i }}"}
      outputs: [o.txt]
      resources: {gpu: 1}
`

type gpuUse struct {
	run, id, devs string
	start, end    int64
}

// Two gsim processes with overlapping device lists: every GPU stage gets
// one device of its run's list as CUDA_VISIBLE_DEVICES, a run uses its
// devices side by side, and no device is ever shared.
func TestGPUDevicesAcrossProcesses(t *testing.T) {
	e := newEnv(t, strings.ReplaceAll(gpuSweep, "NAME", "a"))
	b := filepath.Join(e.dir, "b.yaml")
	os.WriteFile(b, []byte(strings.ReplaceAll(gpuSweep, "NAME", "b")), 0o644)
	ca := e.cmd("run", e.exp)
	ca.Env = append(ca.Env, "CUDA_VISIBLE_DEVICES=0,1") // the default: every visible device
	cb := e.cmd("run", b, "--gpus", "1,2")
	cb.Env = append(cb.Env, "CUDA_VISIBLE_DEVICES=0,1,2")
	outs := []*cmdOut{{c: ca}, {c: cb}}
	for _, o := range outs {
		o.c.Stdout, o.c.Stderr = &o.so, &o.se
		if err := o.c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range outs {
		if r := o.wait(t); r.code != 0 {
			t.Fatalf("run: %s", r)
		}
	}
	if !strings.Contains(outs[0].so.String(), "gpus: 0, 1 [from CUDA_VISIBLE_DEVICES]") {
		t.Errorf("run a does not say which GPUs it uses:\n%s", outs[0].so.String())
	}
	raw, err := os.ReadFile(filepath.Join(e.dir, "uses"))
	if err != nil {
		t.Fatal(err)
	}
	var uses []gpuUse
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var u gpuUse
		if _, err := fmtSscan(l, &u.run, &u.id, &u.devs, &u.start, &u.end); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		uses = append(uses, u)
	}
	if len(uses) != 8 {
		t.Fatalf("%d GPU stages ran, want 8:\n%s", len(uses), raw)
	}
	allowed := map[string]string{"a": "0 1", "b": "1 2"}
	for _, u := range uses {
		if strings.Contains(u.devs, ",") || !strings.Contains(allowed[u.run], u.devs) {
			t.Errorf("%s %s got CUDA_VISIBLE_DEVICES=%q, want one of %s", u.run, u.id, u.devs, allowed[u.run])
		}
	}
	overlapA := false
	for i, x := range uses {
		for _, y := range uses[i+1:] {
			if x.start < y.end && y.start < x.end {
				if x.devs == y.devs {
					t.Errorf("%s %s and %s %s shared GPU %s", x.run, x.id, y.run, y.id, x.devs)
				}
				if x.run == "a" && y.run == "a" {
					overlapA = true
				}
			}
		}
	}
	if !overlapA {
		t.Error("run a never ran two GPU stages side by side on its two GPUs")
	}
}

func TestGPUsFlagErrors(t *testing.T) {
	e := newEnv(t, strings.ReplaceAll(gpuSweep, "NAME", "a"))
	for _, tc := range []struct{ gpus, want string }{
		{"3", "--gpus 3: only 2 GPU(s) visible (0,1, from CUDA_VISIBLE_DEVICES)"},
		{"0,5", "device 5 is not visible"},
		{"many", "want a count (2), a list of devices"},
	} {
		c := e.cmd("run", e.exp, "--gpus", tc.gpus)
		c.Env = append(c.Env, "CUDA_VISIBLE_DEVICES=0,1")
		co := &cmdOut{c: c}
		c.Stdout, c.Stderr = &co.so, &co.se
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if r := co.wait(t); r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("--gpus %s: %s", tc.gpus, r)
		}
	}
}
