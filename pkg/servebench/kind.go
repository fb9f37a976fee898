// Package servebench holds the `serve-bench` kind, which measures any
// OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, transformers
// serve) from the client side, the way `vllm bench serve` and GuideLLM do:
// it replays a workload open loop with streaming on and writes the canonical
// run folder. It also holds the `vllm-result` kind, which imports a result
// file of `vllm bench serve --save-result --save-detailed`.
package servebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Kind is the `serve-bench` stage kind.
type Kind struct{}

var _ stage.Kind = Kind{}

// Name implements stage.Kind.
func (Kind) Name() string { return "serve-bench" }

// Version implements stage.Kind.
func (Kind) Version() string { return "1" }

// CheckParams implements stage.Kind. The URL and model may come from the
// environment of the run, so a missing one is reported by Fingerprint and
// Run, not here (gsim validate runs without them).
func (Kind) CheckParams(params map[string]any) error {
	p, err := decode(params)
	if err != nil {
		return err
	}
	_, err = resolve(p, func(k string) string {
		if k == EnvURL {
			return "http://placeholder"
		}
		if k == EnvModel {
			return "placeholder"
		}
		return ""
	})
	return err
}

// Fingerprint adds the URL and model taken from the environment (those in
// params are in the key already), so pointing $GSIM_SERVE_URL at another
// server reruns the stage. The API key is never part of it.
func (Kind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := decode(params)
	if err != nil {
		return nil, err
	}
	s, err := resolve(p, os.Getenv)
	if err != nil {
		return nil, err
	}
	fp := map[string]string{}
	if p.URL == "" {
		fp["env:"+EnvURL] = redact(s.base)
	}
	if p.Model == "" {
		fp["env:"+EnvModel] = s.Model
	}
	if p.CAFile != "" {
		d, err := stage.FileDigest(stage.Resolve(baseDir, p.CAFile))
		if err != nil {
			return nil, &stage.ParamError{Path: "ca_file", Msg: err.Error()}
		}
		fp["file:"+p.CAFile] = d
	}
	return fp, nil
}

// Resources implements stage.Kind: one slot per server, so the cells of a
// rate sweep take turns instead of loading the same server at once.
func (Kind) Resources(params map[string]any) map[string]int {
	p, err := decode(params)
	if err != nil {
		return nil
	}
	raw := p.URL
	if raw == "" {
		raw = os.Getenv(EnvURL)
	}
	u, err := parseBase(raw)
	if err != nil {
		return map[string]int{"server": 1}
	}
	return map[string]int{"server-" + slotName(u.Host): 1}
}

func slotName(host string) string {
	var b strings.Builder
	for _, r := range host {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Run implements stage.Kind.
// Produces implements stage.Producer: a run folder.
func (Kind) Produces() string { return stage.HoldsRun }

// InputRoles implements stage.InputReader: one workload.
func (Kind) InputRoles(map[string]any) []stage.Role { return []stage.Role{stage.WorkloadRole} }

func (Kind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	p, err := decode(spec.Params)
	if err != nil {
		return err
	}
	s, err := resolve(p, os.Getenv)
	if err != nil {
		return err
	}
	if s.CAFile != "" {
		s.CAFile = stage.Resolve(spec.BaseDir, s.CAFile)
	}
	wdir, err := workloadDir(spec)
	if err != nil {
		return err
	}
	w, err := schema.ReadWorkload(wdir)
	if err != nil {
		return err
	}
	digest, err := schema.WorkloadDigest(wdir)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		if env.Log != nil {
			fmt.Fprintf(env.Log, "serve-bench: "+format+"\n", args...)
		}
	}
	b, err := newBench(s)
	if err != nil {
		return err
	}
	logf("server %s, model %q, endpoint %s, prompt %s, %d requests", redact(s.base), s.Model, s.endpointPath(), s.prompt, len(w.Requests))
	res, err := b.run(ctx, w, logf, func(done, total int) { env.Report(float64(done), float64(total), "requests") })
	if err != nil {
		return err
	}
	return res.write(spec, w, digest, logf)
}

// bench is one configured client.
type bench struct {
	s      *settings
	client *http.Client
	tok    *tokenizer
}

func newBench(s *settings) (*bench, error) {
	c, err := newHTTPClient(s)
	if err != nil {
		return nil, err
	}
	return &bench{s: s, client: c, tok: &tokenizer{s: s, client: c}}, nil
}

// outcome is a finished replay.
type outcome struct {
	s          *settings
	results    []result
	stats      replayStats
	server     serverInfo
	started    time.Time
	ended      time.Time
	promptNote string
	overhead   int64   // tokens the server adds around a prompt text
	perUnit    float64 // tokens per text unit (1 with /tokenize)
	words      bool    // text from common words, sized by calibration
}

func (b *bench) run(ctx context.Context, w *schema.Workload, logf func(string, ...any), progress func(int, int)) (*outcome, error) {
	out := &outcome{s: b.s}
	info, err := probeServer(ctx, b.s, b.client)
	if err != nil {
		return nil, err
	}
	out.server = info
	jobs, err := b.prepare(ctx, w, out, logf)
	if err != nil {
		return nil, err
	}
	if err := b.warmup(ctx, out, logf); err != nil {
		return nil, err
	}
	sortJobs(jobs)
	out.started = time.Now().UTC()
	out.results, out.stats = replay(ctx, b.s, b.client, jobs, progress)
	out.ended = time.Now().UTC()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// prepare builds every request body before the replay starts, so sending
// costs the client nothing but the write.
func (b *bench) prepare(ctx context.Context, w *schema.Workload, out *outcome, logf func(string, ...any)) ([]job, error) {
	s := b.s
	jobs := make([]job, 0, len(w.Requests))
	if s.prompt == PromptText {
		if err := b.chooseText(ctx, out, logf); err != nil {
			return nil, err
		}
	} else {
		out.promptNote = fmt.Sprintf("token ids, seeded random in [%d, %d), seed %d", s.idLo, s.idHi, s.seed)
	}
	for i, r := range w.Requests {
		var prompt any
		if s.prompt == PromptText {
			n := int(math.Round(float64(r.NumPrefillTokens-out.overhead) / out.perUnit))
			if n < 1 {
				return nil, fmt.Errorf("request %d: %d prompt tokens, but the server adds %d around any text; use prompts longer than that or endpoint: completions with prompt: token_ids", r.ID, r.NumPrefillTokens, out.overhead)
			}
			text, err := b.text(ctx, out, s.seed, r.ID, n, logf)
			if err != nil {
				return nil, err
			}
			prompt = text
			if (i+1)%50 == 0 {
				logf("built %d/%d prompt texts", i+1, len(w.Requests))
			}
		} else {
			prompt = tokenIDs(s.seed, r.ID, int(r.NumPrefillTokens), s.idLo, s.idHi)
		}
		body, err := s.requestBody(prompt, r.NumDecodeTokens)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, job{id: r.ID, arrival: r.ArrivalTimeNs, body: body})
	}
	return jobs, nil
}

func (b *bench) tokenizeErr(err error) error {
	var he *httpError
	if errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusMethodNotAllowed) {
		return fmt.Errorf("prompt: text needs the server's /tokenize and /detokenize endpoints (vLLM, SGLang and llama.cpp have them) and %s has none (%v); use endpoint: completions with prompt: token_ids", redact(b.s.base), err)
	}
	return fmt.Errorf("building text prompts with the server's tokenizer: %w", err)
}

// chooseText picks how text prompts are built: with the server's /tokenize
// and /detokenize where it has them (exact), else from common words whose
// token cost is measured from the server's usage (exact where each word is
// one token, as in the usual byte-level BPE vocabularies; each request's
// usage says whether it was). Either way the tokens the server adds around a
// text (a BOS token, a chat template) are measured and subtracted.
func (b *bench) chooseText(ctx context.Context, out *outcome, logf func(string, ...any)) error {
	out.perUnit = 1
	_, err := b.tok.tokenize(ctx, "hello")
	var he *httpError
	if errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusMethodNotAllowed) {
		oh, per, err := b.calibrateWords(ctx)
		if err != nil {
			return err
		}
		out.words, out.overhead, out.perUnit = true, oh, per
		out.promptNote = fmt.Sprintf("text of seeded random common English words (the server has no /tokenize): a word costs %.3g tokens and the server adds %d around a text, both measured from its usage on two calibration requests", per, oh)
		logf("text prompts from common words: %.3g tokens a word, %d added by the server (measured)", per, oh)
		return nil
	}
	if err != nil {
		return b.tokenizeErr(err)
	}
	const n = 32
	text, got, err := b.tok.textOf(ctx, b.s.seed+1_000_003, -1, n)
	if err != nil {
		return b.tokenizeErr(err)
	}
	p, err := b.promptUsage(ctx, text)
	if err != nil {
		return err
	}
	out.overhead = p - int64(got)
	out.promptNote = fmt.Sprintf("text of seeded random token ids, built with the server's /detokenize and /tokenize to num_prefill_tokens - %d (the tokens the server adds around a text, measured from one request's usage)", out.overhead)
	logf("text prompts: the server adds %d tokens around a prompt text", out.overhead)
	return nil
}

// text is a prompt text of n units (tokens, or words in word mode).
func (b *bench) text(ctx context.Context, out *outcome, seed, id int64, n int, logf func(string, ...any)) (string, error) {
	if out.words {
		return wordText(seed, id, n), nil
	}
	text, got, err := b.tok.textOf(ctx, seed, id, n)
	if err != nil {
		return "", b.tokenizeErr(err)
	}
	if got != n {
		logf("request %d: built a text of %d tokens for %d", id, got, n)
	}
	return text, nil
}

// warmup sends short requests one at a time before the replay, and fails the
// stage with the server's answer if the first does not stream: a wrong URL,
// model or prompt form is reported once, not as every row failing.
func (b *bench) warmup(ctx context.Context, out *outcome, logf func(string, ...any)) error {
	s := b.s
	for i := 0; i < s.warmup; i++ {
		var prompt any = tokenIDs(s.seed+2_000_003, int64(i), 16, s.idLo, s.idHi)
		if s.prompt == PromptText {
			text, err := b.text(ctx, out, s.seed+2_000_003, int64(i), 16, logf)
			if err != nil {
				return err
			}
			prompt = text
		}
		body, err := s.requestBody(prompt, 8)
		if err != nil {
			return err
		}
		t0 := time.Now()
		r := newResult(int64(-1-i), 0)
		do(ctx, s, b.client, s.join(s.endpointPath()), body, time.Duration(s.timeoutS*float64(time.Second)),
			func() int64 { return int64(time.Since(t0)) }, &r)
		tt := tokenTimes(r.chunks, map[bool]int64{true: r.usageComp, false: -1}[r.usage], s.tokenTimes)
		if r.errType != "" {
			return b.warmupErr(&r)
		}
		logf("warm-up %d: HTTP %d, %d events, %d tokens (usage %v: %d prompt, %d completion), %.1f ms",
			i, r.status, r.events, len(tt.times), r.usage, r.usagePrompt, r.usageComp, float64(r.done)/1e6)
		if len(tt.times) != 8 {
			logf("warning: the warm-up asked for 8 tokens and got %d: the server may not honour ignore_eos/min_tokens; requests of other lengths will be recorded as failed (token_count)", len(tt.times))
		}
	}
	return nil
}

func (b *bench) warmupErr(r *result) error {
	s := b.s
	msg := fmt.Sprintf("the warm-up request to %s failed (%s: %s)", s.join(s.endpointPath()), r.errType, r.errMsg)
	switch {
	case r.errType == ErrRefused || r.errType == ErrConnect:
		return fmt.Errorf("%s; is the server running at with.url (or $%s)?", msg, EnvURL)
	case r.status == http.StatusNotFound && strings.Contains(strings.ToLower(r.errMsg), "model"):
		return fmt.Errorf("%s; with.model (or $%s) must be a name the server lists at /v1/models", msg, EnvModel)
	case r.status == http.StatusNotFound:
		return fmt.Errorf("%s; the server has no %s: try endpoint: chat (or completions)", msg, s.endpointPath())
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return fmt.Errorf("%s; set the API key in $%s (with.api_key_env names the variable)", msg, s.keyEnv)
	case (r.status == http.StatusBadRequest || r.status == http.StatusUnprocessableEntity) && s.prompt == PromptTokenIDs:
		return fmt.Errorf("%s; if the server does not take token-id prompts, set prompt: text", msg)
	}
	return errors.New(msg)
}

// write puts the canonical run folder into spec.OutDir.
func (o *outcome) write(spec *stage.Spec, w *schema.Workload, digest string, logf func(string, ...any)) error {
	s := o.s
	want := make(map[int64]schema.Request, len(w.Requests))
	for _, r := range w.Requests {
		want[r.ID] = r
	}
	a := assemble(o.results, want, s.tokenTimes)
	nOK := 0
	var firstErr string
	for _, m := range a.reqs {
		if m.Status == schema.StatusOK {
			nOK++
		} else if firstErr == "" {
			firstErr = fmt.Sprintf("request %d: %s: %s", m.RequestID, m.ErrorType, m.ErrorMessage)
		}
	}
	if nOK == 0 && len(a.reqs) > 0 {
		return fmt.Errorf("no request succeeded against %s (first: %s)", redact(s.base), firstErr)
	}
	if err := schema.WriteRequestMetrics(filepath.Join(spec.OutDir, schema.RequestMetricsFile), a.reqs); err != nil {
		return err
	}
	if err := schema.WriteTokenMetrics(filepath.Join(spec.OutDir, schema.TokenMetricsFile), a.toks); err != nil {
		return err
	}
	var cm bytes.Buffer
	if err := writeClientMetrics(&cm, o.results, a, want); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(spec.OutDir, ClientMetricsFile), cm.Bytes(), 0o644); err != nil {
		return err
	}
	var late, sendDelay []int64
	for _, r := range o.results {
		if r.dispatch >= 0 {
			late = append(late, r.dispatch-r.scheduled)
		}
		if r.send >= 0 {
			sendDelay = append(sendDelay, r.send-r.scheduled)
		}
	}
	lq := quantilesOf(late)
	failures := map[string]int{}
	for _, m := range a.reqs {
		if m.Status != schema.StatusOK {
			failures[m.ErrorType]++
		}
	}
	cpu := float64(o.stats.cpuUserNs+o.stats.cpuSysNs) / 1e9
	wall := float64(o.stats.wallNs) / 1e9
	engine := map[string]any{
		"engine":          "openai-compatible-server",
		"server_url":      redact(s.base),
		"endpoint":        s.endpointPath(),
		"served_model":    s.Model,
		"prompt":          s.prompt,
		"ignore_eos":      s.ignoreEOS,
		"min_tokens":      s.minTokens,
		"usage_in_stream": s.usage,
		"logprobs":        s.Logprobs,
		"max_concurrency": s.MaxConcurrency,
		"token_times":     s.tokenTimes,
		"timeout_s":       s.timeoutS,
	}
	if len(s.ExtraBody) > 0 {
		engine["extra_body"] = s.ExtraBody
	}
	if o.server.Header != "" {
		engine["server_header"] = o.server.Header
	}
	if o.server.Version != nil {
		engine["server_version"] = o.server.Version
	}
	if o.server.Model != nil {
		engine["server_model"] = o.server.Model
	}
	if o.server.Props != nil {
		engine["server_props"] = o.server.Props
	}
	host, _ := os.Hostname()
	meta := &schema.RunMeta{
		RunID:          spec.Key,
		RunType:        schema.RunReal,
		Model:          s.Model,
		Hardware:       map[string]any{"seen_from": "client", "note": "the server's hardware is not visible to an HTTP client; see engine.server_* for what the server reports", "client_host": host, "client_cpus": runtime.NumCPU()},
		Engine:         engine,
		WorkloadDigest: digest,
		StartedAt:      o.started.Format(time.RFC3339Nano),
		EndedAt:        o.ended.Format(time.RFC3339Nano),
		Extra: map[string]any{
			"client":                 fmt.Sprintf("gsim serve-bench v%s (%s, net/http)", Kind{}.Version(), runtime.Version()),
			"clock":                  "Go monotonic clock (time.Since of the replay start), ns",
			"arrival":                "arrival_time_ns is when the request was handed to the HTTP transport (send_ns in client_metrics.csv), so ttft_ns is what the server made it wait; the workload's arrival is scheduled_ns",
			"arrival_lateness":       lq,
			"send_delay":             quantilesOf(sendDelay),
			"prompt":                 o.promptNote,
			"prompt_overhead_tokens": o.overhead,
			"length_check":           a.lengths,
			"token_timing": map[string]any{
				"mode":                        s.tokenTimes,
				"tokens_per_chunk_from":       map[bool]string{true: "logprobs", false: "one per chunk with text; usage's extra tokens on the last chunk"}[s.Logprobs],
				"multi_token_chunks":          a.lengths.MultiTokenChunks,
				"tokens_placed_on_last_chunk": a.lengths.TokensPlacedOnLastChunk,
			},
			"failures":      failures,
			"num_ok":        nOK,
			"num_failed":    len(a.reqs) - nOK,
			"max_in_flight": o.stats.maxInFlight,
			"client_cpu": map[string]any{
				"user_s": float64(o.stats.cpuUserNs) / 1e9, "sys_s": float64(o.stats.cpuSysNs) / 1e9,
				"wall_s": wall, "cores_used": cpu / max(wall, 1e-9),
				"note": "getrusage of the gsim process over the replay (includes anything else it ran meanwhile)",
			},
		},
	}
	if err := schema.WriteRunMeta(filepath.Join(spec.OutDir, schema.RunMetaFile), meta); err != nil {
		return err
	}
	logf("%d ok, %d failed %v; lateness p50 %.0fus p99 %.0fus max %.0fus; %d in flight at most; client CPU %.2fs over %.1fs",
		nOK, len(a.reqs)-nOK, failures, float64(lq.P50Ns)/1e3, float64(lq.P99Ns)/1e3, float64(lq.MaxNs)/1e3,
		o.stats.maxInFlight, cpu, wall)
	if l := a.lengths; l.PromptMismatches+l.CompletionMismatches+l.UsageMissing > 0 {
		logf("lengths: %d prompts and %d outputs differ from the workload by the server's usage (max prompt diff %d); %d requests without usage",
			l.PromptMismatches, l.CompletionMismatches, l.PromptMaxAbsDiff, l.UsageMissing)
	}
	return nil
}

// Validate implements stage.Kind.
func (Kind) Validate(spec *stage.Spec) error {
	if err := schema.ValidateRun(spec.OutDir); err != nil {
		return fmt.Errorf("serve-bench output: %w", err)
	}
	wdir, err := workloadDir(spec)
	if err != nil {
		return err
	}
	return checkDigest(spec.OutDir, wdir)
}

// workloadDir is the workload input, found by the one input rule
// (stage.WorkloadRole): the need that holds a workload.
func workloadDir(spec *stage.Spec) (string, error) {
	in, _, err := stage.FindInput(spec, stage.WorkloadRole)
	if err != nil {
		return "", fmt.Errorf("stage %s (%s): %w", spec.Stage, spec.Kind, err)
	}
	return in.Dir, nil
}

func checkDigest(runDir, workloadDir string) error {
	meta, err := schema.ReadRunMeta(filepath.Join(runDir, schema.RunMetaFile))
	if err != nil {
		return err
	}
	want, err := schema.WorkloadDigest(workloadDir)
	if err != nil {
		return err
	}
	if meta.WorkloadDigest != want {
		return fmt.Errorf("%s: workload_digest %s, but the workload %s is %s", filepath.Join(runDir, schema.RunMetaFile),
			schema.ShortDigest(meta.WorkloadDigest), workloadDir, schema.ShortDigest(want))
	}
	return nil
}
