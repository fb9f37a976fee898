package servebench

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/gsim-dev/gsim/pkg/stage"
)

// Environment variables that stand in for with.url, with.model and the API key.
const (
	EnvURL        = "GSIM_SERVE_URL"
	EnvModel      = "GSIM_SERVE_MODEL"
	DefaultKeyEnv = "OPENAI_API_KEY"
)

// Endpoints.
const (
	EndpointCompletions = "completions"
	EndpointChat        = "chat"
)

// Prompt forms.
const (
	PromptAuto     = "auto"
	PromptTokenIDs = "token_ids"
	PromptText     = "text"
)

// Token time assignment for chunks that carry several tokens.
const (
	// TokenTimesChunk gives every token of a chunk the chunk's arrival time,
	// as `vllm bench serve` does (one inter-token gap per chunk).
	TokenTimesChunk = "chunk"
	// TokenTimesSpread spreads a chunk's tokens evenly over the gap since the
	// previous chunk.
	TokenTimesSpread = "spread"
)

// Params are the `with:` of a serve-bench stage.
type Params struct {
	// URL is the server's base URL (http://host:port, with or without a
	// trailing /v1); $GSIM_SERVE_URL when empty.
	URL string `json:"url,omitempty"`
	// Model is the name sent in every request; $GSIM_SERVE_MODEL when empty.
	Model string `json:"model,omitempty"`
	// Workload names the workload stage when several needs hold one.
	Workload string `json:"workload,omitempty"`
	// Endpoint is completions (/v1/completions, default) or chat
	// (/v1/chat/completions).
	Endpoint string `json:"endpoint,omitempty"`
	// Prompt is token_ids (the prompt is a list of token ids: exact, where the
	// server accepts it), text (text built to the token count with the
	// server's /tokenize), or auto (token_ids for completions, text for chat).
	Prompt string `json:"prompt,omitempty"`
	// TokenIDRange is the half-open range prompt token ids are drawn from;
	// [1000, 30000) by default, below every common vocabulary's size and
	// clear of the special tokens at its ends.
	TokenIDRange []int64 `json:"token_id_range,omitempty"`
	// Seed seeds the prompt tokens (each request's from seed and its id).
	Seed *int64 `json:"seed,omitempty"`
	// IgnoreEOS and MinTokens force the output length (both default true):
	// ignore_eos and min_tokens = max_tokens are sent with each request.
	IgnoreEOS *bool `json:"ignore_eos,omitempty"`
	MinTokens *bool `json:"min_tokens,omitempty"`
	// Usage asks for the token counts in the stream (stream_options
	// include_usage; default true).
	Usage *bool `json:"usage,omitempty"`
	// Logprobs asks for one logprob per token, which tells exactly how many
	// tokens each streamed chunk carries (default false: it costs the server
	// time, and most servers stream one token a chunk).
	Logprobs bool `json:"logprobs,omitempty"`
	// TokenTimes is how the tokens of a multi-token chunk are timed: chunk
	// (default) or spread.
	TokenTimes string `json:"token_times,omitempty"`
	// ExtraBody is merged into every request's JSON body (engine-specific
	// sampling or scheduling fields).
	ExtraBody map[string]any `json:"extra_body,omitempty"`
	// TimeoutS bounds each request from send to the end of its stream
	// (default 600).
	TimeoutS *float64 `json:"timeout_s,omitempty"`
	// MaxConcurrency caps requests in flight; 0 (default) is open loop.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// APIKeyEnv names the environment variable holding the API key
	// (default OPENAI_API_KEY; no Authorization header when it is unset).
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// CAFile is a PEM bundle trusted for https URLs besides the system's.
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipVerify accepts any TLS certificate (self-signed test servers).
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// WarmupRequests are sent one after another before the replay and not
	// recorded (default 1; it also checks the server answers).
	WarmupRequests *int `json:"warmup_requests,omitempty"`
}

func decode(params map[string]any) (Params, error) {
	var p Params
	err := stage.DecodeParams(params, &p)
	return p, err
}

// settings are Params with defaults and the environment applied.
type settings struct {
	Params
	base       *url.URL // scheme://host[:port][/prefix], no trailing /v1
	endpoint   string
	prompt     string
	idLo, idHi int64
	seed       int64
	ignoreEOS  bool
	minTokens  bool
	usage      bool
	tokenTimes string
	timeoutS   float64
	warmup     int
	apiKey     string // never written anywhere
	keyEnv     string
}

// resolve applies defaults and the environment and checks the result. getenv
// is os.Getenv outside tests.
func resolve(p Params, getenv func(string) string) (*settings, error) {
	s := &settings{Params: p}
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &stage.ParamError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	raw := p.URL
	if raw == "" {
		raw = getenv(EnvURL)
	}
	if raw == "" {
		bad("url", "required: the server's base URL, e.g. http://localhost:8000 (or set $%s, or --set stages.<stage>.with.url=...)", EnvURL)
	} else if u, err := parseBase(raw); err != nil {
		bad("url", "%v", err)
	} else {
		s.base = u
	}
	if s.Model == "" {
		s.Model = getenv(EnvModel)
	}
	if s.Model == "" {
		bad("model", "required: the model name the server serves, as its /v1/models lists it (or set $%s)", EnvModel)
	}
	switch p.Endpoint {
	case "", EndpointCompletions:
		s.endpoint = EndpointCompletions
	case EndpointChat:
		s.endpoint = EndpointChat
	default:
		bad("endpoint", "%q; use completions (/v1/completions) or chat (/v1/chat/completions)", p.Endpoint)
	}
	switch p.Prompt {
	case "", PromptAuto:
		s.prompt = PromptTokenIDs
		if s.endpoint == EndpointChat {
			s.prompt = PromptText
		}
	case PromptTokenIDs:
		s.prompt = PromptTokenIDs
		if s.endpoint == EndpointChat {
			bad("prompt", "token_ids needs endpoint: completions (chat messages are text); use prompt: text")
		}
	case PromptText:
		s.prompt = PromptText
	default:
		bad("prompt", "%q; use token_ids, text or auto", p.Prompt)
	}
	s.idLo, s.idHi = 1000, 30000
	if p.TokenIDRange != nil {
		if len(p.TokenIDRange) != 2 || p.TokenIDRange[0] < 0 || p.TokenIDRange[1] <= p.TokenIDRange[0] {
			bad("token_id_range", "%v; expected [low, high) with 0 <= low < high, e.g. [1000, 30000]", p.TokenIDRange)
		} else {
			s.idLo, s.idHi = p.TokenIDRange[0], p.TokenIDRange[1]
		}
	}
	if p.Seed != nil {
		if *p.Seed < 0 {
			bad("seed", "must be >= 0")
		}
		s.seed = *p.Seed
	}
	s.ignoreEOS, s.minTokens, s.usage = boolOr(p.IgnoreEOS, true), boolOr(p.MinTokens, true), boolOr(p.Usage, true)
	switch p.TokenTimes {
	case "", TokenTimesChunk:
		s.tokenTimes = TokenTimesChunk
	case TokenTimesSpread:
		s.tokenTimes = TokenTimesSpread
	default:
		bad("token_times", "%q; use chunk (each token gets its chunk's time, as vllm bench serve) or spread", p.TokenTimes)
	}
	s.timeoutS = 600
	if p.TimeoutS != nil {
		if *p.TimeoutS <= 0 {
			bad("timeout_s", "must be > 0 (seconds a request may take from send to the end of its stream)")
		}
		s.timeoutS = *p.TimeoutS
	}
	if p.MaxConcurrency < 0 {
		bad("max_concurrency", "must be >= 0 (0: no cap, open loop)")
	}
	s.warmup = 1
	if p.WarmupRequests != nil {
		if *p.WarmupRequests < 0 {
			bad("warmup_requests", "must be >= 0")
		}
		s.warmup = *p.WarmupRequests
	}
	s.keyEnv = p.APIKeyEnv
	if s.keyEnv == "" {
		s.keyEnv = DefaultKeyEnv
	}
	s.apiKey = getenv(s.keyEnv)
	for _, k := range []string{"model", "prompt", "messages", "stream", "max_tokens", "stream_options"} {
		if _, ok := p.ExtraBody[k]; ok {
			bad("extra_body."+k, "is set by serve-bench from the workload; remove it")
		}
	}
	return s, errors.Join(errs...)
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// parseBase accepts http(s)://host[:port][/prefix][/v1] and returns it
// without /v1, so endpoints and /tokenize, /version can be joined to it.
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: expected an http:// or https:// URL, e.g. http://localhost:8000", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host; expected e.g. http://localhost:8000", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: a base URL takes no query or fragment", raw)
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1")
	u.RawPath = ""
	return u, nil
}

// redact drops userinfo from a URL before it is logged or recorded.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// join returns the base URL with path appended.
func (s *settings) join(path string) string {
	c := *s.base
	c.Path = strings.TrimRight(c.Path, "/") + path
	return c.String()
}

// endpointPath is the generation endpoint under the base URL.
func (s *settings) endpointPath() string {
	if s.endpoint == EndpointChat {
		return "/v1/chat/completions"
	}
	return "/v1/completions"
}
