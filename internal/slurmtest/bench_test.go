package slurmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkTwoHundredJobs runs 200 one-cell jobs of a trivial stage through
// Slurm twice in one go: with gsim (--executor slurm, poll 1s), and as a
// plain shell loop of sbatch that then polls squeue once a second until the
// jobs are gone, the least any tool could do. It reports the wall time of
// each, how long after a job ended gsim had committed it, and the Slurm
// commands each issued. Run it with:
//
//	go test ./internal/slurmtest -run '^$' -bench TwoHundredJobs -benchtime 1x
func BenchmarkTwoHundredJobs(b *testing.B) {
	const n = 200
	needCluster(b)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		loopWall, loopCmds := shellLoop(b, dir, n)

		e := &env{dir: dir, exp: filepath.Join(dir, "bench.yaml"), store: filepath.Join(dir, "store")}
		var vals []string
		for j := 1; j <= n; j++ {
			vals = append(vals, strconv.Itoa(j))
		}
		os.WriteFile(e.exp, []byte(`name: bench
matrix: {i: [`+strings.Join(vals, ", ")+`]}
executor: {slurm: {poll: 1s}}
stages:
  t:
    uses: shell
    resources: {job: true}
    with: {run: 'echo ${{ matrix.i }} > out.txt', outputs: [out.txt]}
`), 0o644)
		c := exec.Command(gsimBin, "run", e.exp, "--executor", "slurm", "--store", e.store, "-j", "400")
		start := time.Now()
		out, err := c.CombinedOutput()
		gsimWall := time.Since(start)
		if err != nil {
			b.Fatalf("gsim: %v\n%s", err, out)
		}
		m := commandsRE.FindStringSubmatch(string(out))
		if m == nil {
			b.Fatalf("no slurm line:\n%s", out)
		}
		sbatch, _ := strconv.Atoi(m[2])
		squeue, _ := strconv.Atoi(m[3])
		sacct, _ := strconv.Atoi(m[4])
		// At most one squeue or sacct per poll interval (1 s), however
		// many jobs: the rate the controller sees does not grow with them.
		if limit := int(gsimWall.Seconds()) + 2; squeue+sacct > limit {
			b.Errorf("%d squeue and %d sacct calls in %s: more than one per second", squeue, sacct, gsimWall)
		}
		lag := commitLag(b, e.store, e.jobsIn(b))
		b.ReportMetric(gsimWall.Seconds()/n, "gsim-s/job")
		b.ReportMetric(loopWall.Seconds()/n, "loop-s/job")
		b.ReportMetric(gsimWall.Seconds()/loopWall.Seconds(), "gsim/loop")
		b.ReportMetric(float64(sbatch+squeue+sacct), "gsim-cmds")
		b.ReportMetric(float64(loopCmds), "loop-cmds")
		b.ReportMetric(lag[len(lag)/2], "end→commit-p50-s")
		b.ReportMetric(lag[len(lag)*9/10], "end→commit-p90-s")
		b.Logf("gsim: %s for %d jobs, commands: sbatch %d, squeue %d, sacct %d; shell loop: %s, %d commands",
			gsimWall.Round(time.Millisecond), n, sbatch, squeue, sacct, loopWall.Round(time.Millisecond), loopCmds)
	}
}

// shellLoop submits n trivial jobs with a loop of sbatch, then polls squeue
// once a second until none is left, and returns the wall time and the
// number of commands it ran.
func shellLoop(b *testing.B, dir string, n int) (time.Duration, int) {
	script := fmt.Sprintf(`set -eu
ids=""
for i in $(seq 1 %d); do
  id=$(sbatch --parsable --job-name=loop-$i --output=/dev/null --chdir=%[2]s --wrap "echo $i > %[2]s/out-$i.txt")
  ids="$ids,$id"
done
polls=0
while :; do
  polls=$((polls+1))
  left=$(squeue -h -t PENDING,RUNNING,COMPLETING,CONFIGURING -j "${ids#,}" -o %%i | wc -l)
  [ "$left" -eq 0 ] && break
  sleep 1
done
echo "$polls"
`, n, dir)
	start := time.Now()
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("shell loop: %v\n%s", err, out)
	}
	polls, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		b.Fatalf("shell loop printed %q", out)
	}
	return wall, n + polls
}

// jobsIn lists the jobs of a store, as env.jobs does, without a *testing.T.
func (e *env) jobsIn(b *testing.B) map[string]time.Time {
	out, err := exec.Command("squeue", "-h", "-t", "all", "-o", "%Z|%e").Output()
	if err != nil {
		b.Fatal(err)
	}
	ends := map[string]time.Time{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dir, end, ok := strings.Cut(l, "|")
		if !ok || !strings.HasPrefix(dir, e.store+"/") {
			continue
		}
		if t, err := time.ParseInLocation("2006-01-02T15:04:05", end, time.Local); err == nil {
			ends[filepath.Base(dir)] = t
		}
	}
	return ends
}

// commitLag is, per job, how long after Slurm's end time (whole seconds)
// its object was committed (the manifest's ended_at), sorted.
func commitLag(b *testing.B, store string, ends map[string]time.Time) []float64 {
	objs, err := os.ReadDir(filepath.Join(store, "objects"))
	if err != nil {
		b.Fatal(err)
	}
	byKey := map[string]time.Time{}
	for staging, end := range ends {
		key, _, _ := strings.Cut(staging, "-")
		byKey[key] = end
	}
	var lags []float64
	for _, o := range objs {
		raw, err := os.ReadFile(filepath.Join(store, "objects", o.Name(), "manifest.json"))
		if err != nil {
			continue
		}
		var m struct {
			EndedAt time.Time `json:"ended_at"`
		}
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		if end, ok := byKey[o.Name()]; ok {
			// Slurm's end is truncated to the second.
			lags = append(lags, m.EndedAt.Sub(end).Seconds()-0.5)
		}
	}
	if len(lags) == 0 {
		b.Fatal("no job matched an object")
	}
	sort.Float64s(lags)
	return lags
}
