package servebench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The client benchmark runs the stand-in server in a child process (this
// test binary, re-executed into TestHelperStandin), so the client's CPU use
// (getrusage of this process) is its own and the server does not share its
// Go scheduler.
const helperEnv = "GSIM_SERVEBENCH_STANDIN"

// TestHelperStandin is not a test: it is the child process of
// BenchmarkClient. It serves until its stdin closes.
func TestHelperStandin(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for BenchmarkClient")
	}
	st := &standin{ttft: 5 * time.Millisecond, itl: 5 * time.Millisecond}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/completions", func(w http.ResponseWriter, r *http.Request) { st.generate(w, r, false) })
	go func() { _ = http.Serve(l, mux) }()
	fmt.Printf("ADDR %s\n", l.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func startHelper(b *testing.B) string {
	b.Helper()
	// GSIM_SERVEBENCH_STANDIN_CPUS (a taskset list) keeps the server off the
	// client's cores where the machine has more.
	argv := []string{os.Args[0], "-test.run=^TestHelperStandin$"}
	if cpus := os.Getenv("GSIM_SERVEBENCH_STANDIN_CPUS"); cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return "http://" + addr
		}
	}
	b.Fatalf("the stand-in helper did not start: %v", sc.Err())
	return ""
}

// BenchmarkClient replays 3 s of Poisson-free (evenly spaced) arrivals at
// each rate against the stand-in (5 ms to the first token, 5 ms between 32
// tokens: ~165 ms a request) and reports the client's arrival lateness, the
// streams it held at once and its own CPU use. Run it with
//
//	go test ./pkg/servebench -run '^$' -bench Client -benchtime 1x
func BenchmarkClient(b *testing.B) {
	url := startHelper(b)
	for _, rate := range []int{100, 300, 1000, 2000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			n := 3 * rate
			jobsTmpl := make([]job, n)
			s, err := resolve(Params{URL: url, Model: "standin"}, func(string) string { return "" })
			if err != nil {
				b.Fatal(err)
			}
			for i := range jobsTmpl {
				body, _ := s.requestBody(tokenIDs(0, int64(i), 64, 1000, 30000), 32)
				jobsTmpl[i] = job{id: int64(i), arrival: int64(i) * int64(time.Second) / int64(rate), body: body}
			}
			client, _ := newHTTPClient(s)
			for it := 0; it < b.N; it++ {
				jobs := append([]job(nil), jobsTmpl...)
				results, st := replay(context.Background(), s, client, jobs, nil)
				var late []int64
				failed, chunks := 0, 0
				for _, r := range results {
					late = append(late, r.dispatch-r.scheduled)
					if r.errType != "" {
						failed++
					}
					chunks += len(r.chunks)
				}
				q := quantilesOf(late)
				wall := float64(st.wallNs) / 1e9
				cpu := float64(st.cpuUserNs+st.cpuSysNs) / 1e9
				b.ReportMetric(float64(q.P50Ns)/1e3, "late_p50_us")
				b.ReportMetric(float64(q.P99Ns)/1e3, "late_p99_us")
				b.ReportMetric(float64(q.MaxNs)/1e3, "late_max_us")
				b.ReportMetric(float64(n-failed)/wall, "req/s")
				b.ReportMetric(float64(st.maxInFlight), "max_streams")
				b.ReportMetric(float64(chunks)/wall, "chunks/s")
				b.ReportMetric(cpu/wall, "client_cores")
				b.ReportMetric(cpu/float64(n)*1e6, "cpu_us/req")
				if failed > 0 {
					b.Errorf("%d of %d requests failed (first: %s)", failed, n, firstFailure(results))
				}
			}
		})
	}
}

func firstFailure(rs []result) string {
	for _, r := range rs {
		if r.errType != "" {
			return r.errType + ": " + r.errMsg
		}
	}
	return ""
}
