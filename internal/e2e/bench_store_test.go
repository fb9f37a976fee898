package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/kinds"
	"github.com/gsim-dev/gsim/pkg/store"
)

// Benchmarks of what a user waits for when nothing has to run: a no-op
// `gsim run` and `gsim status` of a store with 10,000 objects, a no-op over
// a big file named by params in six cells, and `gsim version` as the floor
// every command pays. The set-ups take minutes (they make the stores);
// GSIM_BENCH_DIR keeps them between invocations. See docs/reliability.md
// for the figures and how they were taken.

// benchDir is where the set-ups live: $GSIM_BENCH_DIR, or a folder removed
// with the test binary's.
func benchDir(b *testing.B, name string) string {
	root := os.Getenv("GSIM_BENCH_DIR")
	if root == "" {
		root = filepath.Dir(gsimBin)
	}
	d := filepath.Join(root, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

// big10k: one workload stage over a 100 × 100 matrix, 10,000 objects of
// three files each.
func big10kYAML() string {
	vals := make([]string, 100)
	for i := range vals {
		vals[i] = strconv.Itoa(i + 1)
	}
	v := strings.Join(vals, ", ")
	return `name: big
matrix:
  a: [` + v + `]
  b: [` + v + `]
stages:
  w:
    uses: workload
    with:
      model: Qwen/Qwen3-0.6B
      seed: "${{ matrix.a }}"
      num_requests: 2
      arrival: {process: poisson, rate: "${{ matrix.b }}"}
      prefill: {dist: uniform, min: "${{ matrix.a }}", max: 200}
      decode: {dist: uniform, min: 1, max: 8}
`
}

var (
	setups sync.Map // name → *setup
)

type setup struct {
	once sync.Once
	exp  string
	st   string
	err  error
}

// prepared writes yaml (and whatever extra makes) under benchDir(name) and
// runs it once, so the benchmarks time what is left: nothing to run.
func prepared(b *testing.B, name, yaml string, instances int, extra func(dir string) error) (exp, st string) {
	v, _ := setups.LoadOrStore(name, &setup{})
	s := v.(*setup)
	s.once.Do(func() {
		dir := benchDir(b, name)
		s.exp, s.st = filepath.Join(dir, name+".yaml"), filepath.Join(dir, "store")
		if extra != nil {
			if s.err = extra(dir); s.err != nil {
				return
			}
		}
		if s.err = os.WriteFile(s.exp, []byte(yaml), 0o644); s.err != nil {
			return
		}
		s.err = noopJobs(s.exp, s.st, instances, 0, 2)
	})
	if s.err != nil {
		b.Fatal(s.err)
	}
	return s.exp, s.st
}

func noopJobs(exp, root string, instances, wantUpToDate, jobs int) error {
	reg := kinds.Registry()
	p, err := experiment.Load(exp, experiment.Options{Registry: reg})
	if err != nil {
		return err
	}
	st, err := store.Open(root)
	if err != nil {
		return err
	}
	sum, err := executor.Run(context.Background(), p, executor.Options{Store: st, Registry: reg, Jobs: jobs, Slots: map[string]int{"gpu": 1}})
	if err != nil {
		return err
	}
	if len(sum.Entries) != instances || wantUpToDate > 0 && sum.Count(executor.UpToDateRun) != wantUpToDate {
		return fmt.Errorf("unexpected run: %d entries, %d up to date", len(sum.Entries), sum.Count(executor.UpToDateRun))
	}
	return nil
}

func runCLI(b *testing.B, args ...string) {
	for i := 0; i < b.N; i++ {
		c := execCommand(gsimBin, args...)
		c.Stdout, c.Stderr = io.Discard, io.Discard
		if err := c.Run(); err != nil {
			b.Fatalf("gsim %v: %v", args, err)
		}
	}
}

// BenchmarkVersionCLI is the floor: starting the binary at all.
func BenchmarkVersionCLI(b *testing.B) { runCLI(b, "version") }

// BenchmarkStatus10kCLI: `gsim status` of 10,000 up-to-date objects.
func BenchmarkStatus10kCLI(b *testing.B) {
	exp, st := prepared(b, "big10k", big10kYAML(), 10000, nil)
	b.ResetTimer()
	runCLI(b, "status", exp, "--store", st)
}

// BenchmarkNoop10kCLI: a no-op `gsim run` of 10,000 up-to-date objects.
func BenchmarkNoop10kCLI(b *testing.B) {
	exp, st := prepared(b, "big10k", big10kYAML(), 10000, nil)
	b.ResetTimer()
	runCLI(b, "run", exp, "--store", st)
}

// BenchmarkNoop10k is the same in-process (no start-up, a warm heap).
func BenchmarkNoop10k(b *testing.B) {
	exp, st := prepared(b, "big10k", big10kYAML(), 10000, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := noopJobs(exp, st, 10000, 10000, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// paramFileMB is the size of the file six cells name (166 MB as in the
// report that found every no-op rehashing it); GSIM_BENCH_PARAM_MB changes it.
func paramFileMB() int {
	if n, err := strconv.Atoi(os.Getenv("GSIM_BENCH_PARAM_MB")); err == nil && n > 0 {
		return n
	}
	return 166
}

const paramSweep = `name: param
matrix:
  rate: [1, 2, 3, 4, 5, 6]
stages:
  w:
    uses: workload
    with:
      model: Qwen/Qwen3-0.6B
      seed: 1
      num_requests: 10
      arrival: {process: poisson, rate: "${{ matrix.rate }}"}
      prefill: {dist: empirical, path: lengths.csv}
      decode: {dist: uniform, min: 1, max: 8}
`

// writeLengths writes an empirical length table of about mb megabytes.
func writeLengths(dir string, mb int) error {
	p := filepath.Join(dir, "lengths.csv")
	if st, err := os.Stat(p); err == nil && st.Size() >= int64(mb)<<20*9/10 {
		return nil
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	w.WriteString("num_prefill_tokens,num_decode_tokens\n")
	for n := 0; n < mb*1000_000; {
		k, _ := fmt.Fprintf(w, "%d,%d\n", 1+r.IntN(99999), 1+r.IntN(9999))
		n += k
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// BenchmarkNoopParamFileCLI: a no-op of six cells that all name one big
// file: it is trusted by its signature, not rehashed.
func BenchmarkNoopParamFileCLI(b *testing.B) {
	mb := paramFileMB()
	exp, st := prepared(b, fmt.Sprintf("param%dmb", mb), paramSweep, 6, func(dir string) error { return writeLengths(dir, mb) })
	b.ResetTimer()
	runCLI(b, "run", exp, "--store", st)
}
