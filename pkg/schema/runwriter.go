package schema

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/gsim-dev/gsim/pkg/store"
)

// RunWriter streams a run folder's tables as an engine produces them:
// request_metrics.csv, token_metrics.parquet and step_metrics.parquet. Every
// row is checked as it is written, with the rules ValidateRun applies on
// reading, and every byte is hashed on its way to disk, so the folder is
// neither read back to be validated nor to be hashed at commit: Close
// cross-checks requests against tokens, syncs the files, hands their digests
// to the store and records the folder as validated for this process
// (ValidateRun then only checks that nothing changed since).
type RunWriter struct {
	dir   string
	reqs  string // request_metrics.csv's path, as errors name it
	opt   RunWriterOptions
	files []*store.HashingFile
	bufs  []*bufio.Writer
	req   *RequestMetricsWriter
	tok   *intParquetWriter
	pipe  *tokenPipe
	step  *intParquetWriter
	seq   *tokenSeq
	nreq  int
	ids   idSet
	steps stepCheck
	// scratch is TokenBuffer's slice when the pipe's cannot serve.
	scratch []TokenMetric
	err     error
	closed  bool
}

// RunWriterOptions says what a RunWriter writes.
type RunWriterOptions struct {
	// ErrorColumns adds error_type and error_message to request_metrics.csv;
	// it is required when any request fails.
	ErrorColumns bool
	// Steps writes step_metrics.parquet.
	Steps bool
	// NoTokens writes token_metrics.parquet with no rows (a benchmark of a
	// huge trace that wants only request and step metrics). Such a folder
	// does not pass ValidateRun, whose token counts would not match.
	NoTokens bool
	// Requests, when known, sizes the per-request state up front.
	Requests int
}

// NewRunWriter creates the tables in dir.
func NewRunWriter(dir string, opt RunWriterOptions) (*RunWriter, error) {
	w := &RunWriter{dir: dir, reqs: filepath.Join(dir, RequestMetricsFile), opt: opt, seq: newTokenSeq(filepath.Join(dir, TokenMetricsParquet))}
	w.steps.file = filepath.Join(dir, StepMetricsParquet)
	if n := opt.Requests; n > 0 {
		w.seq.reserve(n)
		w.ids.reserve(n)
	}
	open := func(name string, size int) (*bufio.Writer, error) {
		f, err := store.CreateHashing(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		b := bufio.NewWriterSize(f, size)
		w.files, w.bufs = append(w.files, f), append(w.bufs, b)
		return b, nil
	}
	rb, err := open(RequestMetricsFile, 1<<16)
	if err != nil {
		return nil, err
	}
	w.req = NewRequestMetricsWriter(rb)
	if opt.ErrorColumns {
		w.req.IncludeErrorColumns()
	}
	tb, err := open(TokenMetricsParquet, 1<<20)
	if err != nil {
		w.Abort()
		return nil, err
	}
	w.tok = newIntParquetWriter(tb, TokenMetricsColumns)
	if !opt.NoTokens {
		w.pipe = newTokenPipe(w.seq, w.tok, w.reqs)
	}
	if opt.Steps {
		sb, err := open(StepMetricsParquet, 1<<20)
		if err != nil {
			w.Abort()
			return nil, err
		}
		w.step = newIntParquetWriter(sb, StepMetricsColumns)
	}
	return w, nil
}

func (w *RunWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Token checks and writes one token row.
func (w *RunWriter) Token(m TokenMetric) error {
	if w.err != nil || w.pipe == nil {
		return w.err
	}
	if err := w.pipe.add(m); err != nil {
		return w.fail(err)
	}
	return nil
}

// TokenBuffer returns an empty slice with room for n token rows, inside the
// writer's own buffer when it can: rows appended to it and handed to Tokens
// (before any other call) are not copied again.
func (w *RunWriter) TokenBuffer(n int) []TokenMetric {
	if w.err == nil && w.pipe != nil {
		buf, err := w.pipe.room(n)
		if err != nil {
			w.fail(err)
		}
		if buf != nil {
			return buf
		}
	}
	if cap(w.scratch) < n {
		w.scratch = make([]TokenMetric, 0, n)
	}
	return w.scratch[:0]
}

// Tokens checks and writes token rows, as many calls of Token would.
func (w *RunWriter) Tokens(rows []TokenMetric) error {
	if w.err != nil || w.pipe == nil {
		return w.err
	}
	if err := w.pipe.addAll(rows); err != nil {
		return w.fail(err)
	}
	return nil
}

// Request checks and writes one request row.
func (w *RunWriter) Request(m RequestMetric) error {
	if w.err != nil {
		return w.err
	}
	w.nreq++
	row := w.nreq
	name := w.reqs
	if err := checkRequestRow(name, row, &m, w.opt.ErrorColumns); err != nil {
		return w.fail(err)
	}
	if prev := w.ids.add(m.RequestID, row); prev > 0 {
		return w.fail(rowErr(name, row, "request_id", "%d already appeared in row %d (expected unique ids)", m.RequestID, prev))
	}
	if err := w.req.Write(m); err != nil {
		return w.fail(fmt.Errorf("write %s: %w", RequestMetricsFile, err))
	}
	if w.pipe != nil {
		// Checked against its tokens where they are checked, in order.
		if err := w.pipe.addRequest(summaryOf(&m, row)); err != nil {
			return w.fail(err)
		}
	}
	return nil
}

// Step checks and writes one step row.
func (w *RunWriter) Step(m StepMetric) error {
	if w.err != nil {
		return w.err
	}
	if w.step == nil {
		return w.fail(errors.New("step row written but the run writer was made without Steps"))
	}
	if err := w.steps.add(w.steps.rows+1, &m); err != nil {
		return w.fail(err)
	}
	if err := w.step.addStep(&m); err != nil {
		return w.fail(fmt.Errorf("write %s: %w", StepMetricsParquet, err))
	}
	return nil
}

// Close finishes the files and cross-checks requests against tokens. After
// an error (its own or an earlier row's) the files are left for the caller
// to discard; they are never recorded as validated.
func (w *RunWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.Abort()
		return w.err
	}
	var perr error
	if w.pipe != nil {
		if perr = w.pipe.finish(); perr != nil {
			w.Abort()
			return w.fail(perr)
		}
	}
	errs := []error{w.req.Flush(), w.tok.close()}
	if w.step != nil {
		errs = append(errs, w.step.close())
	}
	for _, b := range w.bufs {
		errs = append(errs, b.Flush())
	}
	if err := errors.Join(errs...); err != nil {
		w.Abort()
		return w.fail(fmt.Errorf("write run folder %s: %w", w.dir, err))
	}
	for _, f := range w.files {
		if err := f.Close(); err != nil {
			return w.fail(fmt.Errorf("write run folder %s: %w", w.dir, err))
		}
	}
	if w.opt.NoTokens {
		return nil
	}
	names := []string{RequestMetricsFile, TokenMetricsParquet}
	if w.step != nil {
		names = append(names, StepMetricsParquet)
	}
	return markValidated(w.dir, names)
}

// Abort closes the files without finishing them.
func (w *RunWriter) Abort() {
	if w.pipe != nil {
		w.pipe.finish()
	}
	for _, f := range w.files {
		f.Abort()
	}
}

// A folder whose tables a RunWriter of this process checked while writing
// them is not read again by ValidateRun, as long as its table files are the
// same (names, sizes, modification times) as when the writer closed them.

type fileStamp struct {
	size, mtimeNs int64
}

var (
	validatedMu   sync.Mutex
	validatedRuns = map[string]map[string]fileStamp{}
)

// runTableNames are every stored form of the three run tables.
var runTableNames = []string{
	RequestMetricsFile, RequestMetricsFile + GzipSuffix,
	TokenMetricsFile, TokenMetricsFile + GzipSuffix, TokenMetricsParquet,
	StepMetricsFile, StepMetricsFile + GzipSuffix, StepMetricsParquet,
}

func markValidated(dir string, names []string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	stamps := map[string]fileStamp{}
	for _, n := range names {
		st, err := os.Stat(filepath.Join(abs, n))
		if err != nil {
			return err
		}
		stamps[n] = fileStamp{st.Size(), st.ModTime().UnixNano()}
	}
	validatedMu.Lock()
	validatedRuns[abs] = stamps
	validatedMu.Unlock()
	return nil
}

// takeValidated reports whether dir's tables are exactly those a RunWriter
// validated, and forgets the record.
func takeValidated(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	validatedMu.Lock()
	stamps, ok := validatedRuns[abs]
	delete(validatedRuns, abs)
	validatedMu.Unlock()
	if !ok {
		return false
	}
	for _, n := range runTableNames {
		st, err := os.Stat(filepath.Join(abs, n))
		want, listed := stamps[n]
		switch {
		case err != nil && listed, err == nil && !listed:
			return false
		case err == nil && (st.Size() != want.size || st.ModTime().UnixNano() != want.mtimeNs):
			return false
		}
	}
	return true
}

// tokenPipe checks and encodes token rows on a second goroutine: token rows
// are most of a run's output, and their validation, Parquet encoding,
// compression and hashing would otherwise double the simulation's time.
// Request rows travel in the same stream (as marker rows), so each request
// is checked against its tokens as soon as they are all in, and nothing per
// request is kept but the token sequence state. Batches cycle through a
// fixed set of buffers, so memory stays bounded whichever side is faster.
type tokenPipe struct {
	cur    *pipeBatch
	full   chan *pipeBatch
	free   chan *pipeBatch
	done   chan error
	failed atomic.Bool
	ended  bool
	err    error
}

type pipeBatch struct {
	rows []TokenMetric // tokens, and markers pointing into reqs: rows[:n]
	n    int
	reqs []reqSummary // request rows in stream order
}

// markerIndex marks a row of pipeBatch.rows that stands for the request row
// reqs[RequestID]; no token has a negative index.
const markerIndex = math.MinInt64

const (
	tokenBatch   = 1 << 15
	tokenBuffers = 4
)

func newTokenPipe(seq *tokenSeq, out *intParquetWriter, reqFile string) *tokenPipe {
	p := &tokenPipe{
		full: make(chan *pipeBatch, tokenBuffers),
		free: make(chan *pipeBatch, tokenBuffers),
		done: make(chan error, 1),
	}
	for i := 0; i < tokenBuffers-1; i++ {
		p.free <- &pipeBatch{rows: make([]TokenMetric, tokenBatch)}
	}
	p.cur = &pipeBatch{rows: make([]TokenMetric, tokenBatch)}
	go p.consume(seq, out, reqFile)
	return p
}

func (p *tokenPipe) consume(seq *tokenSeq, out *intParquetWriter, reqFile string) {
	var err error
	var pending []reqSummary // request rows written before all their tokens
	row := 0
	for b := range p.full {
		if err == nil {
			err = p.check(b, seq, reqFile, &row, &pending)
			if err == nil {
				if werr := out.addTokens(b.rows[:b.n]); werr != nil {
					err = fmt.Errorf("write %s: %w", TokenMetricsParquet, werr)
				}
			}
			if err != nil {
				p.failed.Store(true)
			}
		}
		b.n, b.reqs = 0, b.reqs[:0]
		p.free <- b
	}
	if err == nil {
		for i := range pending {
			if err = checkReqTokens(reqFile, seq, &pending[i]); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = checkOrphans(reqFile, seq)
	}
	p.done <- err
}

// check validates a batch in stream order (the encoder skips its markers).
func (p *tokenPipe) check(b *pipeBatch, seq *tokenSeq, reqFile string, row *int, pending *[]reqSummary) error {
	for i := range b.rows[:b.n] {
		r := &b.rows[i]
		if r.TokenIndex == markerIndex {
			m := &b.reqs[r.RequestID]
			if st := seq.get(m.id); st == nil && m.actual > 0 || st != nil && int64(st.count) < m.actual {
				*pending = append(*pending, *m)
				continue
			}
			if err := checkReqTokens(reqFile, seq, m); err != nil {
				return err
			}
			continue
		}
		*row++
		if err := seq.checkSigns(*row, r); err != nil {
			return err
		}
		st := seq.state(r.RequestID)
		if st.listed {
			return rowErr(seq.file, *row, "request_id", "%d already had its %d tokens checked against %s; this token is one more than its num_decode_tokens_actual",
				r.RequestID, st.count, filepath.Base(reqFile))
		}
		if err := seq.advance(st, *row, r); err != nil {
			return err
		}
	}
	return nil
}

// add queues one token row; an error is the consumer's, seen at a batch
// boundary.
func (p *tokenPipe) add(r TokenMetric) error {
	b := p.cur
	b.rows[b.n] = r
	if b.n++; b.n < tokenBatch {
		return nil
	}
	return p.send()
}

// room returns the free part of the current batch, with room for n rows
// (handing a fuller batch over first), or nil when n rows can never fit.
func (p *tokenPipe) room(n int) ([]TokenMetric, error) {
	if n > tokenBatch {
		return nil, nil
	}
	if b := p.cur; tokenBatch-b.n < n {
		if err := p.send(); err != nil {
			return nil, err
		}
	}
	b := p.cur
	return b.rows[b.n:b.n:tokenBatch], nil
}

// addAll queues token rows; rows written in place into room's slice are
// only counted.
func (p *tokenPipe) addAll(rows []TokenMetric) error {
	if b := p.cur; len(rows) > 0 && len(rows) <= tokenBatch-b.n && &rows[0] == &b.rows[b.n] {
		if b.n += len(rows); b.n == tokenBatch {
			return p.send()
		}
		return nil
	}
	for len(rows) > 0 {
		b := p.cur
		k := copy(b.rows[b.n:], rows)
		rows = rows[k:]
		if b.n += k; b.n == tokenBatch {
			if err := p.send(); err != nil {
				return err
			}
		}
	}
	return nil
}

// addRequest queues a request row's summary behind the tokens before it.
func (p *tokenPipe) addRequest(m reqSummary) error {
	b := p.cur
	b.reqs = append(b.reqs, m)
	b.rows[b.n] = TokenMetric{RequestID: int64(len(b.reqs) - 1), TokenIndex: markerIndex}
	if b.n++; b.n < tokenBatch {
		return nil
	}
	return p.send()
}

// send hands the batch to the consumer and takes a free one.
func (p *tokenPipe) send() error {
	if p.failed.Load() {
		return p.finish()
	}
	p.full <- p.cur
	p.cur = <-p.free
	return nil
}

// finish hands over the last rows and waits for the consumer's verdict,
// which includes the cross-check of requests against tokens.
func (p *tokenPipe) finish() error {
	if p.ended {
		return p.err
	}
	p.ended = true
	if p.cur.n > 0 {
		p.full <- p.cur
		p.cur = nil
	}
	close(p.full)
	p.err = <-p.done
	return p.err
}
