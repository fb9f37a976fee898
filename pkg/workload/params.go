// Package workload generates gsim's workload folders (token lengths and an
// arrival schedule) from seeded parameters, and is the `workload` stage kind.
package workload

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// Params is the `with:` block of a workload stage. Pointers tell "unset"
// from zero so that a missing required value is reported, not defaulted.
type Params struct {
	Model          string  `json:"model"`
	Seed           int64   `json:"seed"`
	NumRequests    int     `json:"num_requests,omitempty"`
	Duration       string  `json:"duration,omitempty"`
	Arrival        Arrival `json:"arrival"`
	Prefill        Lengths `json:"prefill"`
	Decode         Lengths `json:"decode"`
	MaxTotalTokens int64   `json:"max_total_tokens,omitempty"`
	Prompts        string  `json:"prompts,omitempty"`
	// Source takes arrivals and lengths from a public trace instead.
	Source *Source `json:"source,omitempty"`
}

// Arrival processes.
const (
	Poisson    = "poisson"
	Gamma      = "gamma"
	Constant   = "constant"
	Trace      = "trace"
	AllAtOnce  = "all-at-once"
	maxRequest = 10_000_000
)

// Arrival says when requests arrive.
type Arrival struct {
	Process    string   `json:"process"`
	Rate       *float64 `json:"rate,omitempty"`       // requests per second
	Burstiness *float64 `json:"burstiness,omitempty"` // gamma shape
	Path       string   `json:"path,omitempty"`       // trace CSV
}

// Length distributions.
const (
	Fixed     = "fixed"
	Uniform   = "uniform"
	Normal    = "normal"
	LogNormal = "lognormal"
	Zipf      = "zipf"
	Empirical = "empirical"
)

// Lengths is a token-length distribution; Min and Max clip every draw.
type Lengths struct {
	Dist   string   `json:"dist"`
	Value  *int64   `json:"value,omitempty"`
	Min    *int64   `json:"min,omitempty"`
	Max    *int64   `json:"max,omitempty"`
	Mean   *float64 `json:"mean,omitempty"`
	Std    *float64 `json:"std,omitempty"`
	Mu     *float64 `json:"mu,omitempty"`
	Sigma  *float64 `json:"sigma,omitempty"`
	S      *float64 `json:"s,omitempty"`
	Path   string   `json:"path,omitempty"`
	Column string   `json:"column,omitempty"`
}

// Prompt modes.
const (
	PromptsNone      = "none"
	PromptsSynthetic = "synthetic"
)

// DecodeParams turns resolved `with:` params into Params, rejecting unknown
// keys, and checks them.
func DecodeParams(params map[string]any) (Params, error) {
	var p Params
	if err := stage.DecodeParams(params, &p); err != nil {
		return p, err
	}
	return p, p.Check()
}

// Check reports every bad parameter as a *stage.ParamError, joined.
func (p Params) Check() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &stage.ParamError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if p.Model == "" {
		bad("model", "required: the model the workload is for, e.g. Qwen/Qwen3-0.6B")
	}
	if p.Source != nil {
		return errors.Join(append(errs, p.checkSource()...)...)
	}
	dur, durErr := p.duration()
	switch {
	case durErr != nil:
		bad("duration", "%v (expected a Go duration such as 60s or 5m)", durErr)
	case p.Duration != "" && dur <= 0:
		bad("duration", "must be > 0")
	}
	if p.NumRequests < 0 {
		bad("num_requests", "must be > 0")
	}
	if p.NumRequests > maxRequest {
		bad("num_requests", "%d is more than the %d this generator writes", p.NumRequests, maxRequest)
	}
	hasN, hasD := p.NumRequests > 0, p.Duration != ""
	switch {
	case hasN && hasD:
		bad("num_requests", "set num_requests or duration, not both")
	case !hasN && !hasD && p.NumRequests == 0 && p.Arrival.Process != Trace:
		// A negative count has its own message above; "required" would
		// tell the user to set what they did set.
		bad("num_requests", "required: set num_requests (a count) or duration (e.g. 60s)")
	}

	a := p.Arrival
	needRate := a.Process == Poisson || a.Process == Gamma || a.Process == Constant
	switch a.Process {
	case Poisson, Gamma, Constant, Trace, AllAtOnce:
	case "":
		bad("arrival.process", "required: one of poisson, gamma, constant, trace, all-at-once")
	default:
		bad("arrival.process", "%q is not a process (expected poisson, gamma, constant, trace or all-at-once)", a.Process)
	}
	if needRate {
		switch {
		case a.Rate == nil:
			bad("arrival.rate", "required for %s: requests per second", a.Process)
		case !(*a.Rate > 0) || math.IsInf(*a.Rate, 0):
			bad("arrival.rate", "must be > 0")
		case hasD && dur.Seconds()**a.Rate > maxRequest:
			bad("duration", "%s at rate %g is about %.0f requests, more than %d", p.Duration, *a.Rate, dur.Seconds()**a.Rate, maxRequest)
		}
	} else if a.Rate != nil && a.Process != "" {
		bad("arrival.rate", "not used by process %s; remove it", a.Process)
	}
	if a.Process == Gamma {
		switch {
		case a.Burstiness == nil:
			bad("arrival.burstiness", "required for gamma: the shape (1 = Poisson, < 1 burstier)")
		case !(*a.Burstiness > 0) || math.IsInf(*a.Burstiness, 0):
			bad("arrival.burstiness", "must be > 0")
		}
	} else if a.Burstiness != nil && a.Process != "" {
		bad("arrival.burstiness", "only used by process gamma; remove it or use process: gamma")
	}
	if a.Process == Trace {
		if a.Path == "" {
			bad("arrival.path", "required for trace: a CSV with column arrived_at (seconds) or arrival_time_ns")
		}
	} else if a.Path != "" && a.Process != "" {
		bad("arrival.path", "only used by process trace; remove it")
	}
	if a.Process == AllAtOnce && hasD {
		bad("duration", "all-at-once puts every request at time 0; set num_requests instead")
	}

	errs = append(errs, p.Prefill.check("prefill")...)
	errs = append(errs, p.Decode.check("decode")...)
	if p.MaxTotalTokens != 0 && p.MaxTotalTokens < 2 {
		bad("max_total_tokens", "must be >= 2 (a request needs at least one prefill and one decode token)")
	}
	switch p.Prompts {
	case "", PromptsNone, PromptsSynthetic:
	default:
		bad("prompts", "%q (expected none or synthetic)", p.Prompts)
	}
	return errors.Join(errs...)
}

func (p Params) duration() (time.Duration, error) {
	if p.Duration == "" {
		return 0, nil
	}
	return time.ParseDuration(p.Duration)
}

func (l Lengths) check(prefix string) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &stage.ParamError{Path: prefix + "." + field, Msg: fmt.Sprintf(format, args...)})
	}
	// used lists the fields each distribution reads; any other set field is
	// a mistake worth reporting (a typo'd dist silently ignoring `mean`).
	used := map[string]bool{"min": true, "max": true}
	need := func(field string, set bool, what string) {
		used[field] = true
		if !set {
			bad(field, "required for dist %s: %s", l.Dist, what)
		}
	}
	switch l.Dist {
	case Fixed:
		need("value", l.Value != nil, "the token count")
		if l.Value != nil && *l.Value < 1 {
			bad("value", "must be >= 1")
		}
	case Uniform:
		need("min", l.Min != nil, "the smallest length")
		need("max", l.Max != nil, "the largest length")
	case Normal:
		need("mean", l.Mean != nil, "the mean length")
		need("std", l.Std != nil, "the standard deviation")
	case LogNormal:
		used["mean"], used["std"], used["mu"], used["sigma"] = true, true, true, true
		byMoments := l.Mean != nil || l.Std != nil
		byLog := l.Mu != nil || l.Sigma != nil
		switch {
		case byMoments && byLog:
			bad("mu", "give either mu/sigma (of log length) or mean/std (of length), not both")
		case byLog:
			need("mu", l.Mu != nil, "the mean of log length")
			need("sigma", l.Sigma != nil, "the standard deviation of log length")
		default:
			need("mean", l.Mean != nil, "the mean length (or give mu/sigma)")
			need("std", l.Std != nil, "the standard deviation of length (or give mu/sigma)")
			if l.Mean != nil && !(*l.Mean > 0) {
				bad("mean", "must be > 0")
			}
		}
	case Zipf:
		need("s", l.S != nil, "the exponent")
		need("min", l.Min != nil, "the smallest (most frequent) length")
		need("max", l.Max != nil, "the largest length")
		if l.S != nil && !(*l.S > 0) {
			bad("s", "must be > 0")
		}
		if l.Min != nil && l.Max != nil && *l.Max-*l.Min >= maxZipfRange {
			bad("max", "zipf range max-min must be < %d", maxZipfRange)
		}
	case Empirical:
		need("path", l.Path != "", "a Vidur trace CSV or JSON/JSONL file with num_prefill_tokens and num_decode_tokens")
		used["column"] = true
	case "":
		bad("dist", "required: one of fixed, uniform, normal, lognormal, zipf, empirical")
		return errs
	default:
		bad("dist", "%q is not a distribution (expected fixed, uniform, normal, lognormal, zipf or empirical)", l.Dist)
		return errs
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"std", l.Std}, {"sigma", l.Sigma}} {
		if f.v != nil && (*f.v < 0 || math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			bad(f.name, "must be >= 0")
		}
	}
	set := map[string]bool{"value": l.Value != nil, "mean": l.Mean != nil, "std": l.Std != nil, "mu": l.Mu != nil,
		"sigma": l.Sigma != nil, "s": l.S != nil, "path": l.Path != "", "column": l.Column != ""}
	for _, f := range []string{"value", "mean", "std", "mu", "sigma", "s", "path", "column"} {
		if set[f] && !used[f] {
			bad(f, "not used by dist %s; remove it", l.Dist)
		}
	}
	if l.Min != nil && *l.Min < 1 {
		bad("min", "must be >= 1 (every request has at least one token)")
	}
	if l.Min != nil && l.Max != nil && *l.Max < *l.Min {
		bad("max", "%d is below min %d", *l.Max, *l.Min)
	}
	if l.Max != nil && *l.Max < 1 {
		bad("max", "must be >= 1")
	}
	return errs
}

const maxZipfRange = 1 << 22

func (l Lengths) bounds() (lo, hi int64) {
	lo, hi = 1, math.MaxInt64
	if l.Min != nil {
		lo = *l.Min
	}
	if l.Max != nil {
		hi = *l.Max
	}
	return lo, hi
}

// checkSource checks a workload read from a trace: the trace gives arrivals
// and lengths, so the generator's keys must be absent.
func (p Params) checkSource() []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &stage.ParamError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	p.Source.check(bad)
	if p.Arrival.Process != "" || p.Arrival.Rate != nil || p.Arrival.Path != "" || p.Arrival.Burstiness != nil {
		bad("arrival", "not used with source: the trace gives the arrival times; remove it (source.rate_scale and source.sample change the rate)")
	}
	if p.Prefill.Dist != "" {
		bad("prefill", "not used with source: the trace gives the prompt lengths; remove it (max_total_tokens caps them)")
	}
	if p.Decode.Dist != "" {
		bad("decode", "not used with source: the trace gives the output lengths; remove it (max_total_tokens caps them)")
	}
	if p.Duration != "" {
		bad("duration", "not used with source; set source.duration (and source.start) to cut a window")
	}
	if p.NumRequests < 0 || p.NumRequests > maxRequest {
		bad("num_requests", "must be between 1 and %d", maxRequest)
	}
	if p.MaxTotalTokens != 0 && p.MaxTotalTokens < 2 {
		bad("max_total_tokens", "must be >= 2 (a request needs at least one prefill and one decode token)")
	}
	switch p.Prompts {
	case "", PromptsNone, PromptsSynthetic:
	default:
		bad("prompts", "%q (expected none or synthetic)", p.Prompts)
	}
	return errs
}
