package servebench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// commonWords are frequent English words; with a leading space each is one
// token in the byte-level BPE vocabularies of GPT-2, Llama 3 and Qwen. They
// make prompts for servers without a /tokenize endpoint: the tokens a word
// costs and the tokens the server adds around a text are measured from the
// server's own usage (calibrateWords), and every request's prompt count is
// checked against the workload afterwards.
var commonWords = strings.Fields(`the of and to in is was for on that with as by at from his her they this have
had not are but one all were we when there can an which their said if do will each about how up out them then
she many some so these would other into has more two like him see time could no make than first been its who now
people my made over did down only way find use may water long little very after words called just where most know
get through back much go good new write our me man too any day same right look think also around another came come
work three word must because does part even place well such here take why things help put years different away
again off went old number great tell men say small every found still between name should home big give air line
set own under read last never us left end along while might next sound below saw something thought both few those
always looked show large often together asked house world going want school important until form food keep children
feet land side without boy once animals life enough took sometimes four head above kind began almost live page got
earth need far hand high year mother light parts country father let night following picture being study second eyes
soon times story boys since white days ever paper hard near sentence better best across during today others however
sure means knew try told young miles sun ways thing whole hear example heard several change answer room sea against
top turned learn point city play toward five using himself usually`)

// wordText is n seeded random common words.
func wordText(seed, id int64, n int) string {
	g := splitmix64(uint64(seed)*0x9e3779b1 ^ uint64(id+7)*0xff51afd7ed558ccd)
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(commonWords[g.next()%uint64(len(commonWords))])
	}
	return b.String()
}

// promptUsage sends one non-streamed request with max_tokens 1 and returns
// the prompt tokens its usage reports.
func (b *bench) promptUsage(ctx context.Context, text string) (int64, error) {
	body, err := b.s.requestBody(text, 1)
	if err != nil {
		return 0, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return 0, err
	}
	m["stream"] = false
	delete(m, "stream_options")
	var ans struct {
		Usage *struct {
			PromptTokens int64 `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := b.tok.post(ctx, b.s.endpointPath(), m, &ans); err != nil {
		return 0, fmt.Errorf("calibration request: %w", err)
	}
	if ans.Usage == nil {
		return 0, fmt.Errorf("calibration request to %s: the answer reports no usage.prompt_tokens, so text prompts cannot be sized; use endpoint: completions with prompt: token_ids", redact(b.s.base))
	}
	return ans.Usage.PromptTokens, nil
}

// calibrateWords measures, from two requests' usage, how many tokens a common
// word costs and how many the server adds around a text.
func (b *bench) calibrateWords(ctx context.Context) (overhead int64, perWord float64, err error) {
	const n1, n2 = 16, 48
	p1, err := b.promptUsage(ctx, wordText(b.s.seed+3_000_017, -1, n1))
	if err != nil {
		return 0, 0, err
	}
	p2, err := b.promptUsage(ctx, wordText(b.s.seed+3_000_017, -2, n2))
	if err != nil {
		return 0, 0, err
	}
	perWord = float64(p2-p1) / float64(n2-n1)
	if perWord <= 0 {
		return 0, 0, fmt.Errorf("calibration: %d words cost %d prompt tokens and %d words %d; cannot size text prompts", n1, p1, n2, p2)
	}
	overhead = int64(math.Round(float64(p1) - perWord*n1))
	return overhead, perWord, nil
}
