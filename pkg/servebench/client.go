package servebench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Error types recorded in request_metrics.csv's error_type column.
const (
	ErrRefused     = "refused"      // connection refused
	ErrConnect     = "connect"      // any other failure before a response
	ErrTimeout     = "timeout"      // timeout_s passed before the stream ended
	ErrCancelled   = "cancelled"    // the stage was stopped
	ErrStream      = "stream"       // the stream broke or ended early
	ErrBadChunk    = "bad_chunk"    // a data event that is not JSON
	ErrServer      = "server_error" // an error event in the stream
	ErrTokenCount  = "token_count"  // a different number of tokens than the workload asks
	ErrHTTP        = "http_"        // prefix of http_<status>
	ErrNotReplayed = "not_sent"     // the replay stopped before its arrival
)

// tokChunk is one streamed event that carried generated text.
type tokChunk struct {
	t int64 // ns since the replay started, when the event was read
	n int64 // tokens by its logprobs; 0 when unknown
}

// result is everything the client saw of one request. Times are ns since the
// replay started, -1 for what did not happen.
type result struct {
	id                     int64
	scheduled              int64 // the workload's arrival
	dispatch               int64 // when the client started the request (after any concurrency cap wait: send)
	send                   int64 // just before the request was handed to the transport
	wrote                  int64 // request fully written
	headers                int64 // response headers read
	firstEvent             int64 // first SSE event of any kind
	done                   int64 // end of stream
	status                 int   // HTTP status, 0 when none
	chunks                 []tokChunk
	events                 int
	usage                  bool
	usagePrompt, usageComp int64
	finish                 string
	sawDone                bool
	errType                string
	errMsg                 string
}

func newResult(id, scheduled int64) result {
	return result{id: id, scheduled: scheduled, dispatch: -1, send: -1, wrote: -1, headers: -1,
		firstEvent: -1, done: -1, usagePrompt: -1, usageComp: -1}
}

func (r *result) fail(typ, format string, args ...any) {
	if r.errType == "" {
		r.errType, r.errMsg = typ, fmt.Sprintf(format, args...)
	}
}

// newHTTPClient builds the transport: no connection limit (open loop),
// no compression (it would delay streamed bytes), TLS as the params say.
func newHTTPClient(s *settings) (*http.Client, error) {
	tlsConf := &tls.Config{InsecureSkipVerify: s.InsecureSkipVerify} // #nosec: opt-in for self-signed test servers
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("with.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("with.ca_file %s holds no PEM certificate", s.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1 << 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSClientConfig:     tlsConf,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

func (s *settings) authorize(req *http.Request) {
	if s.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+s.apiKey)
	}
}

// job is one request to replay.
type job struct {
	id       int64
	arrival  int64
	body     []byte
	wantToks int64
}

// replayStats are the client's own figures.
type replayStats struct {
	wallNs      int64
	cpuUserNs   int64
	cpuSysNs    int64
	maxInFlight int64
}

// replay sends every job at its arrival time (open loop: however many are in
// flight, unless maxConc caps them) and returns one result per job, in job
// order. Jobs must be sorted by arrival.
func replay(ctx context.Context, s *settings, client *http.Client, jobs []job, progress func(done, total int)) ([]result, replayStats) {
	results := make([]result, len(jobs))
	for i, j := range jobs {
		results[i] = newResult(j.id, j.arrival)
	}
	url := s.join(s.endpointPath())
	timeout := time.Duration(s.timeoutS * float64(time.Second))
	var sem chan struct{}
	if s.MaxConcurrency > 0 {
		sem = make(chan struct{}, s.MaxConcurrency)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inFlight int64
		maxIn    int64
		done     int
	)
	finished := func() {
		mu.Lock()
		inFlight--
		done++
		d := done
		mu.Unlock()
		if progress != nil {
			progress(d, len(jobs))
		}
	}
	ru0 := rusage()
	t0 := time.Now()
	since := func() int64 { return int64(time.Since(t0)) }
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	stopped := false
	for i := range jobs {
		if !stopped {
			stopped = waitUntil(ctx, timer, jobs[i].arrival, since)
		}
		if stopped || ctx.Err() != nil {
			stopped = true
			results[i].fail(ErrNotReplayed, "the bench was stopped before this request's arrival")
			continue
		}
		res := &results[i]
		res.dispatch = since()
		mu.Lock()
		inFlight++
		if inFlight > maxIn {
			maxIn = inFlight
		}
		mu.Unlock()
		wg.Add(1)
		go func(j *job) {
			defer wg.Done()
			defer finished()
			if sem != nil {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
					res.fail(ErrCancelled, "the bench was stopped while this request waited for a concurrency slot")
					return
				}
			}
			do(ctx, s, client, url, j.body, timeout, since, res)
		}(&jobs[i])
	}
	wg.Wait()
	ru1 := rusage()
	return results, replayStats{wallNs: since(), cpuUserNs: ru1.user - ru0.user, cpuSysNs: ru1.sys - ru0.sys, maxInFlight: maxIn}
}

// spinWindow is how long before an arrival the dispatcher stops sleeping and
// polls the clock instead: the Go runtime's timers can wake up to about a
// millisecond late when the process is otherwise idle (the netpoller waits
// in whole milliseconds), which alone would put the lateness P99 near 1 ms.
const spinWindow = 1200 * time.Microsecond

// waitUntil returns at ns since the start (or when ctx ends: then true). It
// sleeps until spinWindow before, then yields the processor in a loop
// (runtime.Gosched), so streams being read keep running meanwhile.
func waitUntil(ctx context.Context, timer *time.Timer, at int64, since func() int64) bool {
	if d := time.Duration(at-since()) - spinWindow; d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return true
		}
	}
	for since() < at {
		if ctx.Err() != nil {
			return true
		}
		runtime.Gosched()
	}
	return false
}

// do sends one request and reads its stream into res.
func do(ctx context.Context, s *settings, client *http.Client, url string, body []byte, timeout time.Duration,
	since func() int64, res *result) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The transport may report the write from its own goroutine, even after
	// Do returned; only this atomic is shared with it.
	var wrote atomic.Int64
	wrote.Store(-1)
	defer func() { res.wrote = wrote.Load() }()
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(since()) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(rctx, trace), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		res.fail(ErrConnect, "%v", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	s.authorize(req)
	res.send = since()
	resp, err := client.Do(req)
	if err != nil {
		res.done = since()
		res.fail(classify(ctx, rctx, err), "%v", unwrapURL(err))
		return
	}
	defer resp.Body.Close()
	res.headers = since()
	res.status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		res.done = since()
		res.fail(fmt.Sprintf("%s%d", ErrHTTP, resp.StatusCode), "%s", excerpt(raw))
		return
	}
	sse := newSSEReader(resp.Body)
	for {
		data, err := sse.next()
		now := since()
		if err != nil {
			res.done = now
			switch {
			case errors.Is(err, io.EOF) && res.finish != "":
				// Some servers close after the finishing chunk without [DONE].
			case errors.Is(err, io.EOF):
				res.fail(ErrStream, "the stream ended after %d events without a finish_reason or [DONE]", res.events)
			default:
				res.fail(classify(ctx, rctx, err), "reading the stream after %d events: %v", res.events, err)
			}
			return
		}
		if res.firstEvent < 0 {
			res.firstEvent = now
		}
		res.events++
		if string(data) == "[DONE]" {
			res.sawDone = true
			res.done = now
			return
		}
		p, err := parseChunk(data)
		if err != nil {
			res.done = now
			res.fail(ErrBadChunk, "event %d is not JSON: %v (%s)", res.events, err, excerpt(data))
			return
		}
		if p.errMsg != "" {
			res.done = now
			res.fail(ErrServer, "%s", p.errMsg)
			return
		}
		if p.text || p.tokens > 0 {
			res.chunks = append(res.chunks, tokChunk{t: now, n: p.tokens})
		}
		if p.finish != "" {
			res.finish = p.finish
		}
		if p.usage {
			res.usage, res.usagePrompt, res.usageComp = true, p.prompt, p.comp
		}
	}
}

// classify names why a request failed: the stage's own cancellation, the
// request's timeout, a refused connection, or another transport error.
func classify(parent, rctx context.Context, err error) string {
	switch {
	case parent.Err() != nil:
		return ErrCancelled
	case errors.Is(rctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return ErrConnect
}

// unwrapURL drops net/http's "Post \"url\": " prefix, which repeats the URL
// on every failed row.
func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

type cpuTimes struct{ user, sys int64 }

func rusage() cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTimes{}
	}
	return cpuTimes{user: ru.Utime.Nano(), sys: ru.Stime.Nano()}
}

// sortJobs orders jobs by arrival, then id (the workload's order for equal
// arrivals).
func sortJobs(jobs []job) {
	sort.SliceStable(jobs, func(a, b int) bool {
		if jobs[a].arrival != jobs[b].arrival {
			return jobs[a].arrival < jobs[b].arrival
		}
		return jobs[a].id < jobs[b].id
	})
}
