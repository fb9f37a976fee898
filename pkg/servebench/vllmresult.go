package servebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// vllmResult is the part of a `vllm bench serve --save-result
// --save-detailed` file the import reads. Times are seconds. itls holds one
// gap per streamed chunk after the first; output_lens are the server's
// completion token counts; start_times (newer vLLM) are each request's
// time.perf_counter() when it was sent; itl_token_lens (some versions) the
// tokens each gap's chunk carried.
type vllmResult struct {
	Date           string          `json:"date"`
	Backend        string          `json:"backend"`
	EndpointType   string          `json:"endpoint_type"`
	ModelID        string          `json:"model_id"`
	TokenizerID    string          `json:"tokenizer_id"`
	NumPrompts     int             `json:"num_prompts"`
	RequestRate    json.RawMessage `json:"request_rate"`
	Burstiness     *float64        `json:"burstiness"`
	MaxConcurrency *int            `json:"max_concurrency"`
	Duration       float64         `json:"duration"`
	InputLens      []int64         `json:"input_lens"`
	OutputLens     []int64         `json:"output_lens"`
	TTFTs          []float64       `json:"ttfts"`
	ITLs           [][]float64     `json:"itls"`
	ITLTokenLens   [][]int64       `json:"itl_token_lens"`
	StartTimes     []float64       `json:"start_times"`
	Errors         []*string       `json:"errors"`
}

// importedRequest is one request of a result file in canonical terms.
type importedRequest struct {
	index           int // position in the file
	arrivalNs       int64
	prefill, decode int64
	times           []int64 // token times, ns from the first send
	failed          bool
	errMsg          string
	unplaced, multi int64
}

// imported is a whole result file, ready to write as a workload and a run.
type imported struct {
	res      *vllmResult
	reqs     []importedRequest // sent requests, by arrival; failed ones included
	dropped  []string          // failed requests left out of the workload, with why
	arrivals string            // how arrival times were obtained
	tokens   string            // how token times were obtained
}

func readVLLMResult(path string) (*vllmResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r vllmResult
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := lineCol(b, se.Offset-1) // Offset is just past the bad byte
			return nil, fmt.Errorf("%s:%d:%d: not valid JSON: %v", path, line, col, err)
		case errors.As(err, &te):
			line, col := lineCol(b, te.Offset)
			return nil, fmt.Errorf("%s:%d:%d: field %s: expected %s (is this a vllm bench serve result file?)", path, line, col, te.Field, te.Type)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func lineCol(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line, col := 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// rateIsInf tells whether request_rate is "inf" (all requests sent at once).
func (r *vllmResult) rateIsInf() bool {
	s := strings.Trim(strings.TrimSpace(string(r.RequestRate)), `"`)
	return strings.EqualFold(s, "inf") || strings.EqualFold(s, "infinity")
}

// convert checks a result file and turns it into canonical requests. Arrival
// times are taken only where they are exact: from start_times when the file
// has them (the send times vLLM measured on the clock of its TTFTs), or 0 for
// every request when the rate was inf without a concurrency cap (vLLM sends
// them all at once). Otherwise the file does not say when requests were sent
// and the import refuses. Token times: token 0 at arrival + ttft, then one
// chunk per itl; tokens per chunk from itl_token_lens when present, else one,
// with the tokens output_lens counts beyond the chunks put on the last chunk
// (as serve-bench does), so TPOT is exact and only the ITL spread is not.
func convert(path string, r *vllmResult) (*imported, error) {
	n := len(r.TTFTs)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
	if n == 0 {
		return nil, bad("no ttfts: this is not a --save-detailed result (rerun vllm bench serve with --save-result --save-detailed)")
	}
	for name, l := range map[string]int{"input_lens": len(r.InputLens), "output_lens": len(r.OutputLens), "itls": len(r.ITLs)} {
		if l != n {
			return nil, bad("%s has %d entries, ttfts %d (expected one per request; was the file edited?)", name, l, n)
		}
	}
	if r.Errors != nil && len(r.Errors) != n {
		return nil, bad("errors has %d entries, ttfts %d", len(r.Errors), n)
	}
	if r.ITLTokenLens != nil && len(r.ITLTokenLens) != n {
		return nil, bad("itl_token_lens has %d entries, ttfts %d", len(r.ITLTokenLens), n)
	}
	out := &imported{res: r}
	arrival := make([]int64, n)
	switch {
	case len(r.StartTimes) == n:
		t0 := math.Inf(1)
		for _, s := range r.StartTimes {
			t0 = math.Min(t0, s)
		}
		for i, s := range r.StartTimes {
			arrival[i] = secNs(s - t0)
		}
		out.arrivals = "start_times: each request's send time as vLLM recorded it (time.perf_counter), relative to the first; exact"
	case len(r.StartTimes) != 0:
		return nil, bad("start_times has %d entries, ttfts %d", len(r.StartTimes), n)
	case r.rateIsInf() && r.MaxConcurrency == nil:
		out.arrivals = "request_rate inf without max_concurrency: vLLM sent every request at once, so every arrival is 0 (exact up to vLLM's own dispatch lateness, which the file does not record)"
	default:
		return nil, bad("the file does not record when requests were sent (no start_times; request_rate %s, max_concurrency %s), so arrival times cannot be reconstructed exactly; use a vLLM whose --save-detailed writes start_times, or request_rate inf without --max-concurrency",
			strings.TrimSpace(string(r.RequestRate)), maxConcText(r.MaxConcurrency))
	}
	out.tokens = "token 0 at arrival + ttft, one streamed chunk per itl; tokens per chunk from itl_token_lens"
	if r.ITLTokenLens == nil {
		out.tokens = "token 0 at arrival + ttft, one streamed chunk per itl (vllm bench serve counts one ITL per chunk); one token per chunk, output_lens' remaining tokens on the last chunk"
	}
	for i := 0; i < n; i++ {
		q := importedRequest{index: i, arrivalNs: arrival[i], prefill: r.InputLens[i], decode: r.OutputLens[i]}
		if r.Errors != nil && r.Errors[i] != nil && *r.Errors[i] != "" {
			q.failed, q.errMsg = true, *r.Errors[i]
		}
		if !q.failed {
			chunks := make([]tokChunk, 0, len(r.ITLs[i])+1)
			t := arrival[i] + secNs(r.TTFTs[i])
			chunks = append(chunks, tokChunk{t: t})
			var lens []int64
			if r.ITLTokenLens != nil {
				lens = r.ITLTokenLens[i]
			}
			acc := r.TTFTs[i]
			for k, gap := range r.ITLs[i] {
				acc += gap
				c := tokChunk{t: arrival[i] + secNs(acc)}
				if k < len(lens) {
					c.n = lens[k]
				}
				chunks = append(chunks, c)
			}
			tt := tokenTimes(chunks, r.OutputLens[i], TokenTimesChunk)
			q.times, q.unplaced, q.multi = tt.times, tt.unplaced, int64(tt.multi)
			if int64(len(q.times)) != q.decode {
				// More chunks than output_lens counts: keep the stream's view.
				q.decode = int64(len(q.times))
			}
		}
		if q.failed || q.prefill < 1 || q.decode < 1 {
			why := q.errMsg
			if why == "" {
				why = fmt.Sprintf("input_len %d, output_len %d (a canonical request needs both >= 1)", q.prefill, q.decode)
			}
			out.dropped = append(out.dropped, fmt.Sprintf("request %d: %s", i, oneLine(why)))
			continue
		}
		out.reqs = append(out.reqs, q)
	}
	if len(out.reqs) == 0 {
		return nil, bad("no successful request to import (%d failed: %s)", len(out.dropped), strings.Join(first(out.dropped, 3), "; "))
	}
	sort.SliceStable(out.reqs, func(a, b int) bool { return out.reqs[a].arrivalNs < out.reqs[b].arrivalNs })
	return out, nil
}

func secNs(s float64) int64 { return int64(math.Round(s * 1e9)) }

func maxConcText(m *int) string {
	if m == nil {
		return "null"
	}
	return fmt.Sprint(*m)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// workload is the imported requests as a canonical workload: ids 0..n-1 in
// arrival order, the file's lengths, the reconstructed arrivals.
func (im *imported) workload(path string) *schema.Workload {
	w := &schema.Workload{Meta: schema.WorkloadMeta{
		Model:     im.res.ModelID,
		Generator: "gsim vllm-workload v1",
		Params: map[string]any{"source": "vllm bench serve result", "file": filepath.Base(path), "date": im.res.Date,
			"request_rate": json.RawMessage(orNull(im.res.RequestRate)), "arrivals": im.arrivals,
			"dropped_failed_requests": len(im.dropped)},
	}}
	if w.Meta.Model == "" {
		w.Meta.Model = "unknown"
	}
	prev := int64(0)
	for i, q := range im.reqs {
		w.Requests = append(w.Requests, schema.Request{ID: int64(i), PromptID: int64(q.index), NumPrefillTokens: q.prefill,
			NumDecodeTokens: q.decode, InterArrivalNs: q.arrivalNs - prev, ArrivalTimeNs: q.arrivalNs})
		prev = q.arrivalNs
	}
	return w
}

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// VLLMParams are the `with:` of the vllm-workload and vllm-result kinds.
type VLLMParams struct {
	// Path is the result JSON, relative to the experiment file's folder.
	Path string `json:"path"`
	// Workload names the vllm-workload stage (vllm-result only) when several
	// needs hold a workload.
	Workload string `json:"workload,omitempty"`
}

func decodeVLLM(params map[string]any) (VLLMParams, error) {
	var p VLLMParams
	if err := stage.DecodeParams(params, &p); err != nil {
		return p, err
	}
	if p.Path == "" {
		return p, &stage.ParamError{Path: "path", Msg: "required: a result file of vllm bench serve --save-result --save-detailed"}
	}
	return p, nil
}

func vllmFingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	p, err := decodeVLLM(params)
	if err != nil {
		return nil, err
	}
	d, err := stage.FileDigest(stage.Resolve(baseDir, p.Path))
	if err != nil {
		return nil, &stage.ParamError{Path: "path", Msg: fmt.Sprintf("%v (relative paths start at the experiment file's folder)", err)}
	}
	return map[string]string{"file:" + filepath.ToSlash(p.Path): d}, nil
}

func loadVLLM(spec *stage.Spec) (string, *imported, error) {
	p, err := decodeVLLM(spec.Params)
	if err != nil {
		return "", nil, err
	}
	path := stage.Resolve(spec.BaseDir, p.Path)
	r, err := readVLLMResult(path)
	if err != nil {
		return "", nil, err
	}
	im, err := convert(path, r)
	return path, im, err
}

// VLLMWorkloadKind is the `vllm-workload` kind: the workload a vLLM result
// file was measured on (its lengths and reconstructed arrivals), so that
// simulators can replay it and compare with the `vllm-result` import.
type VLLMWorkloadKind struct{}

var _ stage.Kind = VLLMWorkloadKind{}

// Name implements stage.Kind.
func (VLLMWorkloadKind) Name() string { return "vllm-workload" }

// Version implements stage.Kind.
func (VLLMWorkloadKind) Version() string { return "1" }

// CheckParams implements stage.Kind.
func (VLLMWorkloadKind) CheckParams(params map[string]any) error {
	_, err := decodeVLLM(params)
	return err
}

// Fingerprint implements stage.Kind: the result file's digest.
func (VLLMWorkloadKind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	return vllmFingerprint(params, baseDir)
}

// Resources implements stage.Kind.
func (VLLMWorkloadKind) Resources(map[string]any) map[string]int { return nil }

// Produces implements stage.Producer: a workload.
func (VLLMWorkloadKind) Produces() string { return stage.HoldsWorkload }

// VolatileFiles implements stage.Volatile: workload_meta.json's created_at.
func (VLLMWorkloadKind) VolatileFiles() []string { return []string{schema.WorkloadMetaFile} }

// Run implements stage.Kind.
func (VLLMWorkloadKind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	path, im, err := loadVLLM(spec)
	if err != nil {
		return err
	}
	if err := schema.WriteWorkload(spec.OutDir, im.workload(path)); err != nil {
		return err
	}
	if env.Log != nil {
		fmt.Fprintf(env.Log, "vllm-workload: %d requests from %s; arrivals: %s\n", len(im.reqs), path, im.arrivals)
		for _, d := range im.dropped {
			fmt.Fprintf(env.Log, "vllm-workload: left out failed %s\n", d)
		}
	}
	return ctx.Err()
}

// Validate implements stage.Kind.
func (VLLMWorkloadKind) Validate(spec *stage.Spec) error {
	return schema.ValidateWorkloadDir(spec.OutDir)
}

// VLLMResultKind is the `vllm-result` kind: a vLLM result file as a
// canonical run folder on the workload `vllm-workload` made of it.
type VLLMResultKind struct{}

var _ stage.Kind = VLLMResultKind{}

// Name implements stage.Kind.
func (VLLMResultKind) Name() string { return "vllm-result" }

// Version implements stage.Kind.
func (VLLMResultKind) Version() string { return "1" }

// CheckParams implements stage.Kind.
func (VLLMResultKind) CheckParams(params map[string]any) error {
	_, err := decodeVLLM(params)
	return err
}

// Fingerprint implements stage.Kind.
func (VLLMResultKind) Fingerprint(params map[string]any, baseDir string) (map[string]string, error) {
	return vllmFingerprint(params, baseDir)
}

// Resources implements stage.Kind.
func (VLLMResultKind) Resources(map[string]any) map[string]int { return nil }

// Produces implements stage.Producer: a run folder.
func (VLLMResultKind) Produces() string { return stage.HoldsRun }

// InputRoles implements stage.InputReader: the vllm-workload made of the
// same file.
func (VLLMResultKind) InputRoles(map[string]any) []stage.Role {
	return []stage.Role{stage.WorkloadRole}
}

// Run implements stage.Kind.
func (VLLMResultKind) Run(ctx context.Context, spec *stage.Spec, env stage.Env) error {
	path, im, err := loadVLLM(spec)
	if err != nil {
		return err
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
	mine := im.workload(path)
	if len(w.Requests) != len(mine.Requests) {
		return fmt.Errorf("the workload %s has %d requests, %s %d: the workload must be the vllm-workload stage made of the same file", wdir, len(w.Requests), path, len(mine.Requests))
	}
	for i := range w.Requests {
		a, b := w.Requests[i], mine.Requests[i]
		if a.NumPrefillTokens != b.NumPrefillTokens || a.NumDecodeTokens != b.NumDecodeTokens || a.ArrivalTimeNs != b.ArrivalTimeNs {
			return fmt.Errorf("the workload %s differs from %s at request %d: the workload must be the vllm-workload stage made of the same file", wdir, path, i)
		}
	}
	var reqs []schema.RequestMetric
	var toks []schema.TokenMetric
	var unplaced, multi int64
	for i, q := range im.reqs {
		id := int64(i)
		n := int64(len(q.times))
		reqs = append(reqs, schema.RequestMetric{RequestID: id, ArrivalTimeNs: q.arrivalNs, FirstTokenTimeNs: q.times[0],
			TTFTNs: q.times[0] - q.arrivalNs, CompletionTimeNs: q.times[n-1], NumPrefillTokens: q.prefill,
			NumDecodeTokens: q.decode, NumDecodeTokensActual: n, Status: schema.StatusOK})
		prev := int64(0)
		for k, t := range q.times {
			lat := int64(0)
			if k > 0 {
				lat = t - prev
			}
			toks = append(toks, schema.TokenMetric{RequestID: id, TokenIndex: int64(k), TokenTimeNs: t, TokenLatencyNs: lat})
			prev = t
		}
		unplaced += q.unplaced
		multi += q.multi
	}
	// Canonical order is by request id; ids follow arrival already.
	if err := schema.WriteRequestMetrics(filepath.Join(spec.OutDir, schema.RequestMetricsFile), reqs); err != nil {
		return err
	}
	if err := schema.WriteTokenMetrics(filepath.Join(spec.OutDir, schema.TokenMetricsFile), toks); err != nil {
		return err
	}
	r := im.res
	meta := &schema.RunMeta{
		RunID:          spec.Key,
		RunType:        schema.RunReal,
		Model:          w.Meta.Model,
		Hardware:       map[string]any{"seen_from": "vllm bench serve result file", "note": "the file does not record the server's hardware"},
		Engine:         map[string]any{"engine": "vllm (imported result)", "backend": r.Backend, "endpoint_type": r.EndpointType, "tokenizer_id": r.TokenizerID, "token_times": TokenTimesChunk},
		WorkloadDigest: digest,
		Extra: map[string]any{
			"source":                  map[string]any{"file": filepath.Base(path), "date": r.Date, "request_rate": json.RawMessage(orNull(r.RequestRate)), "max_concurrency": r.MaxConcurrency, "burstiness": r.Burstiness, "duration_s": r.Duration, "num_prompts": r.NumPrompts},
			"arrival":                 im.arrivals,
			"token_timing":            map[string]any{"mode": TokenTimesChunk, "how": im.tokens, "multi_token_chunks": multi, "tokens_placed_on_last_chunk": unplaced},
			"dropped_failed_requests": im.dropped,
			"clock":                   "vLLM's time.perf_counter, converted from seconds to ns",
		},
	}
	if err := schema.WriteRunMeta(filepath.Join(spec.OutDir, schema.RunMetaFile), meta); err != nil {
		return err
	}
	if env.Log != nil {
		fmt.Fprintf(env.Log, "vllm-result: %d requests from %s (%d failed ones left out); %d tokens placed on last chunks\n", len(reqs), path, len(im.dropped), unplaced)
	}
	return ctx.Err()
}

// Validate implements stage.Kind.
func (VLLMResultKind) Validate(spec *stage.Spec) error {
	if err := schema.ValidateRun(spec.OutDir); err != nil {
		return fmt.Errorf("vllm-result output: %w", err)
	}
	wdir, err := workloadDir(spec)
	if err != nil {
		return err
	}
	return checkDigest(spec.OutDir, wdir)
}
