package servebench

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/gsim-dev/gsim/pkg/schema"
)

// ClientMetricsFile holds what the client saw of each request beyond the
// canonical columns: send and stream times, HTTP status, chunk and usage
// counts. It is part of the run folder; compare does not read it.
const ClientMetricsFile = "client_metrics.csv"

// ClientMetricsColumns is client_metrics.csv's header.
var ClientMetricsColumns = []string{"request_id", "scheduled_ns", "dispatch_ns", "send_ns", "wrote_ns", "headers_ns",
	"first_event_ns", "first_token_ns", "done_ns", "lateness_ns", "http_status", "events", "token_chunks",
	"max_tokens_per_chunk", "tokens_placed_on_last_chunk", "usage_prompt_tokens", "usage_completion_tokens",
	"expected_prompt_tokens", "expected_completion_tokens", "finish_reason", "status", "error_type"}

// timed is one request's tokens after time assignment.
type timed struct {
	times    []int64
	unplaced int64 // tokens the usage counts beyond the chunks' own counts
	multi    int   // chunks that carried more than one token
	maxPer   int64
}

// tokenTimes assigns a time to every generated token. A chunk carries the
// number of tokens its logprobs list, else one. When the server's usage
// counts more tokens than that (tokens whose text was empty or was sent
// together without logprobs), the extra ones are put on the last chunk: the
// client cannot know where they were produced, and the completion time is
// the last chunk's either way. mode chunk gives each token its chunk's time
// (so a chunk of k tokens yields k-1 zero gaps, the one real gap being the
// chunk's, as vllm bench serve counts one ITL per chunk); spread places them
// evenly over the gap since the previous chunk (the first chunk's tokens all
// get its time: nothing before it bounds them).
func tokenTimes(chunks []tokChunk, usage int64, mode string) timed {
	var out timed
	if len(chunks) == 0 {
		return out
	}
	counts := make([]int64, len(chunks))
	var total int64
	for i, c := range chunks {
		k := c.n
		if k <= 0 {
			k = 1
		}
		counts[i] = k
		total += k
	}
	if usage > total {
		out.unplaced = usage - total
		counts[len(counts)-1] += out.unplaced
		total = usage
	}
	out.times = make([]int64, 0, total)
	prev := int64(-1)
	for i, c := range chunks {
		k := counts[i]
		if k > 1 {
			out.multi++
		}
		if k > out.maxPer {
			out.maxPer = k
		}
		for j := int64(1); j <= k; j++ {
			t := c.t
			if mode == TokenTimesSpread && prev >= 0 {
				t = prev + (c.t-prev)*j/k
			}
			out.times = append(out.times, t)
		}
		prev = c.t
	}
	return out
}

// lengthStats summarize how the lengths the server reported compare with
// the workload's.
type lengthStats struct {
	UsageReported           int   `json:"requests_with_usage"`
	UsageMissing            int   `json:"requests_without_usage"`
	PromptMismatches        int   `json:"prompt_token_mismatches"`
	PromptMaxAbsDiff        int64 `json:"prompt_token_max_abs_diff"`
	CompletionMismatches    int   `json:"completion_token_mismatches"`
	ChunkCountMismatches    int   `json:"chunk_count_vs_usage_mismatches"`
	MultiTokenChunks        int   `json:"multi_token_chunks"`
	MaxTokensPerChunk       int64 `json:"max_tokens_per_chunk"`
	TokensPlacedOnLastChunk int64 `json:"tokens_placed_on_last_chunk"`
}

// assembled is a finished run in canonical form.
type assembled struct {
	reqs    []schema.RequestMetric
	toks    []schema.TokenMetric
	timing  []timed
	lengths lengthStats
}

// assemble turns the client's results into canonical rows, in request id
// order. want maps request id to its workload request. A request is ok when
// its stream ended normally and carried exactly the workload's number of
// output tokens; otherwise it is failed with the reason. Its arrival is
// when it was sent (so TTFT is what the server made it wait, as vllm bench
// serve measures it), or its scheduled arrival when it never was.
func assemble(results []result, want map[int64]schema.Request, mode string) assembled {
	rs := append([]result(nil), results...)
	sort.Slice(rs, func(a, b int) bool { return rs[a].id < rs[b].id })
	var out assembled
	out.timing = make([]timed, len(rs))
	for i := range rs {
		r := &rs[i]
		w := want[r.id]
		usage := int64(-1)
		if r.usage {
			usage = r.usageComp
		}
		tt := tokenTimes(r.chunks, usage, mode)
		out.timing[i] = tt
		ls := &out.lengths
		if r.usage {
			ls.UsageReported++
			if d := r.usagePrompt - w.NumPrefillTokens; d != 0 {
				ls.PromptMismatches++
				if a := int64(math.Abs(float64(d))); a > ls.PromptMaxAbsDiff {
					ls.PromptMaxAbsDiff = a
				}
			}
			if r.usageComp != w.NumDecodeTokens {
				ls.CompletionMismatches++
			}
			var counted int64
			for _, c := range r.chunks {
				counted += max(c.n, 1)
			}
			if counted != r.usageComp {
				ls.ChunkCountMismatches++
			}
		} else if r.errType == "" {
			ls.UsageMissing++
		}
		ls.MultiTokenChunks += tt.multi
		ls.MaxTokensPerChunk = max(ls.MaxTokensPerChunk, tt.maxPer)
		ls.TokensPlacedOnLastChunk += tt.unplaced

		n := int64(len(tt.times))
		if r.errType == "" && n != w.NumDecodeTokens {
			msg := fmt.Sprintf("streamed %d tokens in %d chunks, the workload asks %d", n, len(r.chunks), w.NumDecodeTokens)
			if r.usage {
				msg += fmt.Sprintf(" (server usage: %d completion tokens, finish_reason %q)", r.usageComp, r.finish)
			}
			r.fail(ErrTokenCount, "%s", msg)
		}
		arrival := r.send
		if arrival < 0 {
			arrival = r.scheduled
		}
		m := schema.RequestMetric{RequestID: r.id, ArrivalTimeNs: arrival, FirstTokenTimeNs: -1, TTFTNs: -1,
			CompletionTimeNs: -1, NumPrefillTokens: w.NumPrefillTokens, NumDecodeTokens: w.NumDecodeTokens,
			NumDecodeTokensActual: n, Status: schema.StatusOK}
		if n > 0 {
			m.FirstTokenTimeNs = tt.times[0]
			m.TTFTNs = tt.times[0] - arrival
		}
		if r.errType != "" {
			m.Status, m.ErrorType, m.ErrorMessage = schema.StatusFailed, r.errType, r.errMsg
		} else {
			m.CompletionTimeNs = tt.times[n-1]
		}
		out.reqs = append(out.reqs, m)
		prev := int64(0)
		for k, t := range tt.times {
			lat := int64(0)
			if k > 0 {
				lat = t - prev
			}
			out.toks = append(out.toks, schema.TokenMetric{RequestID: r.id, TokenIndex: int64(k), TokenTimeNs: t, TokenLatencyNs: lat})
			prev = t
		}
	}
	// results were copied; hand the failure reasons back by id.
	byID := make(map[int64]*result, len(results))
	for i := range results {
		byID[results[i].id] = &results[i]
	}
	for i := range rs {
		*byID[rs[i].id] = rs[i]
	}
	return out
}

// writeClientMetrics writes client_metrics.csv for results in id order.
func writeClientMetrics(w io.Writer, results []result, a assembled, want map[int64]schema.Request) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ClientMetricsColumns); err != nil {
		return err
	}
	rs := append([]result(nil), results...)
	sort.Slice(rs, func(x, y int) bool { return rs[x].id < rs[y].id })
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	for i, r := range rs {
		first := int64(-1)
		if len(r.chunks) > 0 {
			first = r.chunks[0].t
		}
		late := int64(-1)
		if r.dispatch >= 0 {
			late = r.dispatch - r.scheduled
		}
		status := schema.StatusOK
		if r.errType != "" {
			status = schema.StatusFailed
		}
		w := want[r.id]
		rec := []string{i64(r.id), i64(r.scheduled), i64(r.dispatch), i64(r.send), i64(r.wrote), i64(r.headers),
			i64(r.firstEvent), i64(first), i64(r.done), i64(late), strconv.Itoa(r.status), strconv.Itoa(r.events),
			strconv.Itoa(len(r.chunks)), i64(a.timing[i].maxPer), i64(a.timing[i].unplaced),
			i64(r.usagePrompt), i64(r.usageComp), i64(w.NumPrefillTokens), i64(w.NumDecodeTokens), r.finish, status, r.errType}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// quantiles are the lateness statistics recorded in run_meta.
type quantiles struct {
	N      int   `json:"n"`
	P50Ns  int64 `json:"p50_ns"`
	P90Ns  int64 `json:"p90_ns"`
	P99Ns  int64 `json:"p99_ns"`
	MaxNs  int64 `json:"max_ns"`
	MeanNs int64 `json:"mean_ns"`
}

// quantilesOf uses linear interpolation between closest ranks (numpy's
// default), as the rest of gsim does.
func quantilesOf(v []int64) quantiles {
	if len(v) == 0 {
		return quantiles{}
	}
	s := append([]int64(nil), v...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	q := func(p float64) int64 {
		pos := p * float64(len(s)-1)
		lo := int(math.Floor(pos))
		hi := min(lo+1, len(s)-1)
		return int64(math.Round(float64(s[lo]) + (float64(s[hi])-float64(s[lo]))*(pos-float64(lo))))
	}
	var sum float64
	for _, x := range s {
		sum += float64(x)
	}
	return quantiles{N: len(s), P50Ns: q(0.5), P90Ns: q(0.9), P99Ns: q(0.99), MaxNs: s[len(s)-1], MeanNs: int64(sum / float64(len(s)))}
}
