// Package scale holds the production-scale benchmark: a workload of a
// million requests (bench-10k's length distributions), two embedded
// simulations and a compare, run through the gsim binary under
// /usr/bin/time, reporting wall time, peak RSS and bytes on disk.
//
//	go test ./internal/scale -run XXX -bench . -benchtime 1x            # 1M requests
//	GSIM_SCALE_REQUESTS=100000 go test ./internal/scale -run XXX -bench .
//
// The test beside it runs the same pipeline at 2,000 requests and checks
// what it wrote.
package scale

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gsim-dev/gsim/pkg/analysis"
	"github.com/gsim-dev/gsim/pkg/report"
	"github.com/gsim-dev/gsim/pkg/schema"
)

const experiment = "testdata/scale.yaml"

func buildGsim(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "gsim")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/gsim-dev/gsim/cmd/gsim").CombinedOutput()
	if err != nil {
		tb.Fatalf("build gsim: %v\n%s", err, out)
	}
	return bin
}

func run(tb testing.TB, bin string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("gsim %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The whole pipeline at 2,000 requests through the binary: the simulators
// write Parquet token and step tables that compare, the store and the
// schema readers all accept, and no run is read back at commit.
func TestPipelineSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gsim binary")
	}
	bin := buildGsim(t)
	store := t.TempDir()
	run(t, bin, "run", experiment, "--store", store, "--set", "stages.workload.with.num_requests=2000")
	runs := filepath.Join(store, "runs", "scale")
	for _, sim := range []string{"vllm", "sarathi"} {
		dir := filepath.Join(runs, sim)
		for _, f := range []string{schema.TokenMetricsParquet, schema.StepMetricsParquet, schema.RequestMetricsFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Fatalf("%s: %v", sim, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, schema.TokenMetricsFile)); err == nil {
			t.Fatalf("%s wrote a CSV token file beside the Parquet one", sim)
		}
		if err := schema.ValidateRun(dir); err != nil {
			t.Fatalf("%s does not read back as a valid run folder: %v", sim, err)
		}
	}
	res, err := report.ReadResult(filepath.Join(runs, "compare"))
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Runs[0].Stats[analysis.ITL].Count; n < 2000*8 {
		t.Fatalf("ITL count %d: the token table was not read", n)
	}
	if _, err := os.Stat(filepath.Join(runs, "compare", report.TimelineFile)); err != nil {
		t.Fatal(err)
	}
	// The stored digests, taken while writing, are the files' digests.
	out := run(t, bin, "run", experiment, "--store", store, "--set", "stages.workload.with.num_requests=2000", "--verify")
	if !strings.Contains(out, "0 ran") {
		t.Fatalf("a --verify rerun reran stages: digests recorded at commit differ from the files\n%s", out)
	}
}

// measured is what /usr/bin/time -v and du say about one command.
type measured struct {
	wall    time.Duration
	cpu     float64 // user + system seconds: what the load of a shared machine does not inflate
	rssMB   float64
	diskMB  float64
	command string
}

func timed(b *testing.B, store string, argv ...string) measured {
	b.Helper()
	cmd := exec.Command("/usr/bin/time", append([]string{"-v"}, argv...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	m := measured{command: strings.Join(argv, " ")}
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "Elapsed (wall clock) time"):
			m.wall = parseClock(line[strings.LastIndex(line, " ")+1:])
		case strings.HasPrefix(line, "User time (seconds):"), strings.HasPrefix(line, "System time (seconds):"):
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndex(line, ":")+1:]), 64)
			m.cpu += v
		case strings.HasPrefix(line, "Maximum resident set size (kbytes):"):
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Maximum resident set size (kbytes):")), 64)
			m.rssMB = kb / 1024
		}
	}
	m.diskMB = float64(du(store)) / (1 << 20)
	return m
}

// parseClock reads /usr/bin/time's [h:]m:ss.cc.
func parseClock(s string) time.Duration {
	parts := strings.Split(s, ":")
	var sec float64
	for _, p := range parts {
		v, _ := strconv.ParseFloat(p, 64)
		sec = sec*60 + v
	}
	return time.Duration(sec * float64(time.Second))
}

func du(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// BenchmarkScale runs workload → two sims → compare, then the vllm sim stage
// alone and the compare stage alone (forced, their inputs reused), each
// under /usr/bin/time -v. CPU seconds (user + system) are the measure to
// compare across runs on a shared machine: wall time there depends on
// everything else that runs.
func BenchmarkScale(b *testing.B) {
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		b.Skip("needs /usr/bin/time (Debian package time)")
	}
	n := 1_000_000
	if s := os.Getenv("GSIM_SCALE_REQUESTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	bin := buildGsim(b)
	set := fmt.Sprintf("stages.workload.with.num_requests=%d", n)
	for i := 0; i < b.N; i++ {
		store := b.TempDir()
		before := loadavg()
		all := timed(b, store, bin, "run", experiment, "--store", store, "--set", set)
		sim := timed(b, store, bin, "run", experiment, "--store", store, "--set", set, "--only", "vllm", "--force", "vllm")
		cmp := timed(b, store, bin, "run", experiment, "--store", store, "--set", set, "--only", "compare", "--force", "compare")
		b.Logf("%d requests; load average before %s, after %s", n, before, loadavg())
		b.Logf("pipeline: %.1f s wall, %.1f s CPU, %.0f MB peak RSS, %.0f MB on disk (%s)", all.wall.Seconds(), all.cpu, all.rssMB, all.diskMB, all.command)
		b.Logf("sim stage: %.1f s wall, %.1f s CPU, %.0f MB peak RSS", sim.wall.Seconds(), sim.cpu, sim.rssMB)
		b.Logf("compare stage: %.1f s wall, %.1f s CPU, %.0f MB peak RSS", cmp.wall.Seconds(), cmp.cpu, cmp.rssMB)
		b.ReportMetric(all.wall.Seconds(), "pipeline-s")
		b.ReportMetric(all.rssMB, "pipeline-rss-MB")
		b.ReportMetric(all.diskMB, "disk-MB")
		b.ReportMetric(all.cpu, "pipeline-cpu-s")
		b.ReportMetric(sim.wall.Seconds(), "sim-s")
		b.ReportMetric(sim.cpu, "sim-cpu-s")
		b.ReportMetric(sim.rssMB, "sim-rss-MB")
		b.ReportMetric(cmp.wall.Seconds(), "compare-s")
		b.ReportMetric(cmp.cpu, "compare-cpu-s")
	}
}
