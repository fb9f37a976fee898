package report

import "fmt"

// tokenTimingNote says, for a run measured from a streaming client, that some
// streamed chunks carried several tokens and how their times were assigned
// (run_meta.json's extra.token_timing, written by serve-bench and the vLLM
// import): the ITL statistics depend on that choice, TTFT and TPOT do not.
func tokenTimingNote(r RunResult) string {
	tt, ok := r.Extra["token_timing"].(map[string]any)
	if !ok {
		return ""
	}
	multi, _ := tt["multi_token_chunks"].(float64)
	placed, _ := tt["tokens_placed_on_last_chunk"].(float64)
	if multi <= 0 && placed <= 0 {
		return ""
	}
	mode, _ := tt["mode"].(string)
	how := "each token has its chunk's time, so a chunk of k tokens adds k-1 zero gaps to ITL (as vllm bench serve counts one ITL per chunk)"
	if mode == "spread" {
		how = "a chunk's tokens are spread evenly over the gap since the previous chunk"
	}
	return fmt.Sprintf("**%s** was measured from the client's side of a stream: %.0f streamed chunks carried several tokens "+
		"and %.0f tokens were counted only by the server's usage; %s. TTFT and TPOT are exact, ITL depends on this.",
		r.Label, multi, placed, how)
}
