package workload

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gsim-dev/gsim/pkg/schema"
	"github.com/gsim-dev/gsim/pkg/stage"
)

// Each concern draws from its own PCG stream of the seed, so changing the
// length distribution leaves arrivals alone and a rate sweep keeps the same
// lengths.
const (
	streamArrival = iota + 1
	streamPrefill
	streamDecode
	streamPrompts
	streamTrace
)

func resolve(baseDir, p string) string { return stage.Resolve(baseDir, p) }

// Generate builds the workload the params describe; relative paths in params
// resolve against baseDir. The same params and file contents always give the
// same requests. Meta carries model, seed, params and the generator name;
// WriteWorkload fills the rest.
func Generate(p Params, baseDir string) (*schema.Workload, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	seed := uint64(p.Seed)
	rng := func(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }
	if p.Source != nil {
		w, _, err := fromSource(p, baseDir)
		return w, err
	}

	dur, _ := p.duration()
	times, err := arrivals(p.Arrival, rng(streamArrival), p.NumRequests, dur.Nanoseconds(), baseDir)
	if err != nil {
		return nil, err
	}
	n := len(times)

	tables := map[string]*table{}
	pre, err := newSampler(p.Prefill, "num_prefill_tokens", baseDir, tables)
	if err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	dec, err := newSampler(p.Decode, "num_decode_tokens", baseDir, tables)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	// Both lengths from the same file: draw one row for both, keeping the
	// file's prefill/decode correlation.
	joint := p.Prefill.Dist == Empirical && p.Decode.Dist == Empirical &&
		resolve(baseDir, p.Prefill.Path) == resolve(baseDir, p.Decode.Path)
	preLo, preHi := p.Prefill.bounds()
	decLo, decHi := p.Decode.bounds()
	rp, rd := rng(streamPrefill), rng(streamDecode)

	w := &schema.Workload{Requests: make([]schema.Request, n)}
	var prev int64
	for i := range n {
		var np, nd int64
		if joint {
			row := rp.IntN(len(pre.(empiricalSampler).vals))
			np, nd = pre.(empiricalSampler).vals[row], dec.(empiricalSampler).vals[row]
		} else {
			np, nd = pre.sample(rp), dec.sample(rd)
		}
		np, nd = clip(np, preLo, preHi), clip(nd, decLo, decHi)
		if m := p.MaxTotalTokens; m > 0 && np+nd > m {
			nd = max(m-np, 1)
			np = min(np, m-nd)
		}
		w.Requests[i] = schema.Request{
			ID: int64(i), PromptID: int64(i),
			NumPrefillTokens: np, NumDecodeTokens: nd,
			InterArrivalNs: times[i] - prev, ArrivalTimeNs: times[i],
		}
		prev = times[i]
	}
	if p.Prompts == PromptsSynthetic {
		w.Prompts = syntheticPrompts(w.Requests, rng(streamPrompts))
	}
	params, err := paramsMap(p)
	if err != nil {
		return nil, err
	}
	w.Meta = schema.WorkloadMeta{Model: p.Model, Seed: p.Seed, Params: params, Generator: schema.WorkloadGenerator}
	return w, nil
}

func clip(v, lo, hi int64) int64 { return min(max(v, lo), hi) }

func newSampler(l Lengths, defCol, baseDir string, tables map[string]*table) (sampler, error) {
	lo, hi := l.bounds()
	switch l.Dist {
	case Fixed:
		return fixedSampler{*l.Value}, nil
	case Uniform:
		return uniformSampler{lo, hi}, nil
	case Normal:
		return normalSampler{*l.Mean, *l.Std}, nil
	case LogNormal:
		if l.Mu != nil {
			return logNormalSampler{*l.Mu, *l.Sigma}, nil
		}
		mu, sigma := logNormalFromMoments(*l.Mean, *l.Std)
		return logNormalSampler{mu, sigma}, nil
	case Zipf:
		return newZipf(lo, hi, *l.S), nil
	case Empirical:
		path := resolve(baseDir, l.Path)
		t, ok := tables[path]
		if !ok {
			var err error
			if t, err = readTable(path, quoterFor(baseDir, path)); err != nil {
				return nil, err
			}
			tables[path] = t
		}
		col := l.Column
		if col == "" {
			col = defCol
		}
		vals, err := t.column(col)
		if err != nil {
			return nil, err
		}
		return empiricalSampler{vals}, nil
	}
	return nil, fmt.Errorf("unknown dist %q", l.Dist)
}

// syntheticWords are common English words that are one token each in the
// usual BPE vocabularies, so a prompt of n words is about n tokens.
var syntheticWords = strings.Fields(`the of and to in is was for on that with as by at from
it this be are or an not have which has but were had they their one all we been more when
time would there what so about can will if no out some into up other only new its than then
first any like these two may such people year over also most way make many after well could`)

// syntheticPrompts gives each request a text of about its prefill length in
// words. Engines that take token ids should use num_prefill_tokens directly;
// these texts are for engines that only take text.
func syntheticPrompts(reqs []schema.Request, r *rand.Rand) []schema.Prompt {
	out := make([]schema.Prompt, len(reqs))
	var b strings.Builder
	for i, q := range reqs {
		b.Reset()
		for j := int64(0); j < q.NumPrefillTokens; j++ {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(syntheticWords[r.IntN(len(syntheticWords))])
		}
		out[i] = schema.Prompt{ID: q.PromptID, Text: b.String()}
	}
	return out
}

// paramsMap is the canonical form of p for workload_meta.json: unset values
// left out, so the meta shows what shaped the workload.
func paramsMap(p Params) (map[string]any, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// fromSource builds the workload from a public trace (with.source).
func fromSource(p Params, baseDir string) (*schema.Workload, TraceStats, error) {
	reqs, st, err := readSource(*p.Source, resolve(baseDir, p.Source.Path), p.Seed, p.NumRequests)
	if err != nil {
		return nil, st, err
	}
	for i := range reqs {
		r := &reqs[i]
		if m := p.MaxTotalTokens; m > 0 && r.NumPrefillTokens+r.NumDecodeTokens > m {
			r.NumDecodeTokens = max(m-r.NumPrefillTokens, 1)
			r.NumPrefillTokens = min(r.NumPrefillTokens, m-r.NumDecodeTokens)
		}
	}
	w := &schema.Workload{Requests: reqs}
	if p.Prompts == PromptsSynthetic {
		w.Prompts = syntheticPrompts(w.Requests, rand.New(rand.NewPCG(uint64(p.Seed), streamPrompts)))
	}
	params, err := paramsMap(p)
	if err != nil {
		return nil, st, err
	}
	w.Meta = schema.WorkloadMeta{Model: p.Model, Seed: p.Seed, Params: params, Generator: schema.WorkloadGenerator}
	return w, st, nil
}
