package engine

import (
	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// FolderSink streams a canonical run folder (request_metrics.csv,
// token_metrics.parquet, step_metrics.parquet) as the simulation runs,
// through a schema.RunWriter: rows are checked and hashed as they are
// written, so the stage never reads its own output back. Rows come in
// simulated-time order: requests as they complete, tokens as they are
// produced (requests interleave, which the schema allows).
type FolderSink struct {
	w *schema.RunWriter
}

// NewFolderSink creates the tables in dir for a run of the given number of
// requests (0 if unknown). With tokens false, token_metrics.parquet has no
// rows (for benchmarks of huge traces where per-token rows are not wanted).
func NewFolderSink(dir string, tokens bool, requests int) (*FolderSink, error) {
	w, err := schema.NewRunWriter(dir, schema.RunWriterOptions{Steps: true, NoTokens: !tokens, Requests: requests})
	if err != nil {
		return nil, err
	}
	return &FolderSink{w: w}, nil
}

func (s *FolderSink) Token(r *sched.Request, index, t, lat int64) error {
	return s.w.Token(schema.TokenMetric{RequestID: r.ID, TokenIndex: index, TokenTimeNs: t, TokenLatencyNs: lat})
}

// TokenBuffer implements TokenBatchSink: the run writer's own buffer.
func (s *FolderSink) TokenBuffer(n int) []schema.TokenMetric { return s.w.TokenBuffer(n) }

// Tokens implements TokenBatchSink.
func (s *FolderSink) Tokens(toks []schema.TokenMetric) error { return s.w.Tokens(toks) }

func (s *FolderSink) Request(r *sched.Request) error {
	return s.w.Request(schema.RequestMetric{RequestID: r.ID, ArrivalTimeNs: r.Arrival, FirstTokenTimeNs: r.FirstTokenNs,
		TTFTNs: r.FirstTokenNs - r.Arrival, CompletionTimeNs: r.CompletionNs, NumPrefillTokens: r.Prompt,
		NumDecodeTokens: r.Decode, NumDecodeTokensActual: r.Decode, Status: schema.StatusOK})
}

func (s *FolderSink) Step(step, start, end int64, sh sched.Shape) error {
	return s.w.Step(schema.StepMetric{Step: step, StartNs: start, EndNs: end, NumPrefillTokens: sh.PrefillTokens,
		NumDecodeTokens: sh.DecodeTokens, NumRequests: sh.Requests, NumPrefillRequests: sh.PrefillRequests,
		NumDecodeRequests: sh.DecodeRequests, NumContextTokens: sh.ContextTokens})
}

// Close finishes every file and cross-checks requests against tokens.
func (s *FolderSink) Close() error { return s.w.Close() }
