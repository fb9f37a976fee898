//go:build unix

package schema

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user + system time: what a benchmark of a
// writer with a second goroutine costs, which the load of a shared machine
// inflates far less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunWriter writes a simulator-shaped run (simTokens' 2M token rows,
// each request's row after its last token, and a step row per step) through
// a RunWriter into a folder: checks, Parquet encoding, hashing and the
// files, as a sim stage pays for them. cpu-ns/row is per token row.
//
//	go test ./pkg/schema -run XXX -bench RunWriter -benchtime 5x
func BenchmarkRunWriter(b *testing.B) {
	toks := simTokens(2_000_000)
	// The calls a simulator makes, worked out before timing: per step its
	// tokens, its step row, then the rows of the requests it finished.
	type stepCalls struct {
		toks []TokenMetric
		step StepMetric
		reqs []RequestMetric
	}
	total := map[int64]int64{}
	for _, m := range toks {
		total[m.RequestID]++
	}
	type reqState struct{ first, last, n int64 }
	seen := map[int64]*reqState{}
	var calls []stepCalls
	for i := 0; i < len(toks); {
		j := i
		for j < len(toks) && toks[j].TokenTimeNs == toks[i].TokenTimeNs {
			j++
		}
		t := toks[i].TokenTimeNs
		c := stepCalls{toks: toks[i:j], step: StepMetric{Step: int64(len(calls)), StartNs: t - 1000, EndNs: t, NumDecodeTokens: int64(j - i),
			NumRequests: int64(j - i), NumDecodeRequests: int64(j - i), NumContextTokens: int64(j - i)}}
		for _, m := range toks[i:j] {
			st := seen[m.RequestID]
			if st == nil {
				st = &reqState{first: m.TokenTimeNs}
				seen[m.RequestID] = st
			}
			st.last, st.n = m.TokenTimeNs, st.n+1
			if st.n == total[m.RequestID] {
				c.reqs = append(c.reqs, RequestMetric{RequestID: m.RequestID, FirstTokenTimeNs: st.first, TTFTNs: st.first,
					CompletionTimeNs: st.last, NumPrefillTokens: 16, NumDecodeTokens: st.n, NumDecodeTokensActual: st.n, Status: StatusOK})
			}
		}
		calls = append(calls, c)
		i = j
	}
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		c0 := cpuTime()
		w, err := NewRunWriter(dir, RunWriterOptions{Steps: true, Requests: len(total)})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range calls {
			buf := append(w.TokenBuffer(len(c.toks)), c.toks...)
			if err := w.Tokens(buf); err != nil {
				b.Fatal(err)
			}
			if err := w.Step(c.step); err != nil {
				b.Fatal(err)
			}
			for _, r := range c.reqs {
				if err := w.Request(r); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(len(toks)), "cpu-ns/row")
}
