package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gsim-dev/gsim/pkg/executor"
	"github.com/gsim-dev/gsim/pkg/experiment"
	"github.com/gsim-dev/gsim/pkg/kinds"
	"github.com/gsim-dev/gsim/pkg/store"
)

// sweep: 24 cells × 5 stages plus a shared stage whose output is a 1 GiB
// (sparse) file, so a no-op run that rehashed outputs would be obvious.
const sweep = `name: sweep
matrix:
  a: [1, 2, 3, 4, 5, 6]
  b: [1, 2, 3, 4]
stages:
  big:
    uses: shell
    with:
      run: truncate -s 1G big.bin
      outputs: [big.bin]
  s1:
    uses: shell
    needs: [big]
    with: {run: 'echo $A $B > o.txt', env: {A: "${{ matrix.a }}", B: "${{ matrix.b }}"}, outputs: [o.txt]}
  s2:
    uses: shell
    needs: [s1]
    with: {run: 'cat $GSIM_INPUT_S1/o.txt > o.txt', outputs: [o.txt]}
  s3:
    uses: shell
    needs: [s2]
    with: {run: 'cat $GSIM_INPUT_S2/o.txt > o.txt', outputs: [o.txt]}
  s4:
    uses: shell
    needs: [s3]
    with: {run: 'cat $GSIM_INPUT_S3/o.txt > o.txt', outputs: [o.txt]}
  s5:
    uses: shell
    needs: [s4]
    with: {run: 'cat $GSIM_INPUT_S4/o.txt > o.txt', outputs: [o.txt]}
`

var (
	sweepOnce sync.Once
	sweepDir  string
	sweepErr  error
)

// sweepStore runs the sweep once so that the benchmarks time no-op runs.
func sweepStore(b *testing.B) (exp, st string) {
	sweepOnce.Do(func() {
		sweepDir = filepath.Join(filepath.Dir(gsimBin), "sweep")
		os.MkdirAll(sweepDir, 0o755)
		exp := filepath.Join(sweepDir, "sweep.yaml")
		if sweepErr = os.WriteFile(exp, []byte(sweep), 0o644); sweepErr != nil {
			return
		}
		sweepErr = noop(exp, filepath.Join(sweepDir, "store"), 121, 0)
	})
	if sweepErr != nil {
		b.Fatal(sweepErr)
	}
	return filepath.Join(sweepDir, "sweep.yaml"), filepath.Join(sweepDir, "store")
}

// noop loads and runs the experiment in-process, as `gsim run` does, and
// checks how many instances were up to date.
func noop(exp, root string, instances, wantUpToDate int) error {
	reg := kinds.Registry()
	p, err := experiment.Load(exp, experiment.Options{Registry: reg})
	if err != nil {
		return err
	}
	st, err := store.Open(root)
	if err != nil {
		return err
	}
	sum, err := executor.Run(context.Background(), p, executor.Options{Store: st, Registry: reg, Slots: map[string]int{"gpu": 1}})
	if err != nil {
		return err
	}
	if len(sum.Entries) != instances || wantUpToDate > 0 && sum.Count(executor.UpToDateRun) != wantUpToDate {
		var sb strings.Builder
		sum.Print(&sb)
		return fmt.Errorf("unexpected run: %s", sb.String())
	}
	return nil
}

// BenchmarkNoopRun times a no-op `gsim run` in-process: load and expand the
// YAML, compute 121 keys, check every object's manifest and file stats.
func BenchmarkNoopRun(b *testing.B) {
	exp, st := sweepStore(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := noop(exp, st, 121, 121); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNoopRunCLI is the same through the binary, as a user sees it.
func BenchmarkNoopRunCLI(b *testing.B) {
	exp, st := sweepStore(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := execCommand(gsimBin, "run", exp, "--store", st)
		c.Stdout, c.Stderr = io.Discard, io.Discard
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
