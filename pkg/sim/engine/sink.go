package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/sim/sched"
)

// FolderSink streams a canonical run folder's CSVs (request_metrics.csv,
// token_metrics.csv, step_metrics.csv) as the simulation runs. Rows come in
// simulated-time order: requests as they complete, tokens as they are
// produced (requests interleave, which the schema allows).
type FolderSink struct {
	files  []*os.File
	req    *schema.RequestMetricsWriter
	tok    *schema.TokenMetricsWriter
	step   *schema.StepMetricsWriter
	tokens bool
}

// NewFolderSink creates the CSVs in dir. With tokens false,
// token_metrics.csv is written with its header only (for benchmarks of
// huge traces where per-token rows are not wanted).
func NewFolderSink(dir string, tokens bool) (*FolderSink, error) {
	s := &FolderSink{tokens: tokens}
	open := func(name string) (*os.File, error) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		s.files = append(s.files, f)
		return f, nil
	}
	rf, err := open(schema.RequestMetricsFile)
	if err != nil {
		return nil, err
	}
	tf, err := open(schema.TokenMetricsFile)
	if err != nil {
		s.abort()
		return nil, err
	}
	sf, err := open(schema.StepMetricsFile)
	if err != nil {
		s.abort()
		return nil, err
	}
	s.req = schema.NewRequestMetricsWriter(rf)
	s.tok = schema.NewTokenMetricsWriter(tf)
	s.step = schema.NewStepMetricsWriter(sf)
	return s, nil
}

func (s *FolderSink) abort() {
	for _, f := range s.files {
		f.Close()
	}
}

func (s *FolderSink) Token(r *sched.Request, index, t, lat int64) error {
	if !s.tokens {
		return nil
	}
	return s.tok.Write(schema.TokenMetric{RequestID: r.ID, TokenIndex: index, TokenTimeNs: t, TokenLatencyNs: lat})
}

func (s *FolderSink) Request(r *sched.Request) error {
	return s.req.Write(schema.RequestMetric{RequestID: r.ID, ArrivalTimeNs: r.Arrival, FirstTokenTimeNs: r.FirstTokenNs,
		TTFTNs: r.FirstTokenNs - r.Arrival, CompletionTimeNs: r.CompletionNs, NumPrefillTokens: r.Prompt,
		NumDecodeTokens: r.Decode, NumDecodeTokensActual: r.Decode, Status: schema.StatusOK})
}

func (s *FolderSink) Step(step, start, end int64, sh sched.Shape) error {
	return s.step.Write(schema.StepMetric{Step: step, StartNs: start, EndNs: end, NumPrefillTokens: sh.PrefillTokens,
		NumDecodeTokens: sh.DecodeTokens, NumRequests: sh.Requests, NumPrefillRequests: sh.PrefillRequests,
		NumDecodeRequests: sh.DecodeRequests, NumContextTokens: sh.ContextTokens})
}

// Close flushes and closes every file.
func (s *FolderSink) Close() error {
	var errs []error
	for _, fl := range []func() error{s.req.Flush, s.tok.Flush, s.step.Flush} {
		if err := fl(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range s.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write run folder: %w", err)
	}
	return nil
}
