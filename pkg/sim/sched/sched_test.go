package sched

import (
	"testing"
)

func hf(t *testing.T, budget, blocks int64) Scheduler {
	t.Helper()
	s, err := New("hf-cb", Config{BlockSize: 32, NumBlocks: blocks, MaxBatchTokens: budget, SafetyMargin: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func step(s Scheduler, now int64) *Batch {
	var b Batch
	if !s.Next(now, &b) {
		return nil
	}
	b.Apply(now+1, func(*Request, int64, int64) {})
	s.Finish(&b)
	return &b
}

func TestHFSplitsAtBudget(t *testing.T) {
	s := hf(t, 512, 1000)
	a, b, c := NewRequest(0, 0, 0, 300, 4), NewRequest(1, 1, 0, 300, 4), NewRequest(2, 2, 0, 300, 4)
	s.Add(a)
	s.Add(b)
	s.Add(c)
	bt := step(s, 0)
	if len(bt.Entries) != 2 || bt.Entries[0].Tokens != 300 || bt.Entries[1].Tokens != 212 {
		t.Fatalf("batch %+v, want 300 + 212 (the second split at the budget)", bt.Entries)
	}
	if !a.PrefillDone || b.PrefillDone || b.status != hfPrefilling {
		t.Fatal("first prefill should be done, the second waiting for its remainder")
	}
	// Next: a decodes first (FIFO), then b's remainder (88), then c.
	bt = step(s, 10)
	if bt.Entries[0].Req != a || bt.Entries[0].Tokens != 1 || bt.Entries[1].Req != b || bt.Entries[1].Tokens != 88 ||
		bt.Entries[2].Req != c || bt.Entries[2].Tokens != 300 {
		t.Fatalf("second batch wrong: %+v", bt.Entries)
	}
}

// transformers takes the whole remainder when it fits the budget exactly.
func TestHFPromptEqualToBudgetRunsWhole(t *testing.T) {
	s := hf(t, 256, 1000)
	r := NewRequest(0, 0, 0, 256, 2)
	s.Add(r)
	bt := step(s, 0)
	if bt.Entries[0].Tokens != 256 || !r.PrefillDone || r.Generated() != 1 {
		t.Fatalf("256-token prompt under a 256 budget: tokens %d, done %v", bt.Entries[0].Tokens, r.PrefillDone)
	}
}

func TestHFBlockRule(t *testing.T) {
	for _, c := range []struct{ prompt, blocks int64 }{{100, 4}, {96, 4}, {95, 4}, {94, 3}, {1, 1}, {30, 1}, {31, 2}, {32, 2}} {
		s := hf(t, 4096, 1000)
		r := NewRequest(0, 0, 0, c.prompt, 3)
		s.Add(r)
		step(s, 0)
		if r.Blocks != c.blocks {
			t.Errorf("prompt %d: %d blocks, want %d (transformers allocates (n+1)//bs + 1 for an empty request)", c.prompt, r.Blocks, c.blocks)
		}
	}
}

func TestHFSafetyMarginHoldsNewPrefills(t *testing.T) {
	// 10 blocks, margin 0.2: below 2 free blocks only decodes and the first
	// request of an iteration join.
	s := hf(t, 4096, 10)
	a := NewRequest(0, 0, 0, 280, 50) // 9 blocks
	s.Add(a)
	step(s, 0)
	b := NewRequest(1, 1, 1, 20, 2)
	s.Add(b)
	bt := step(s, 2)
	if len(bt.Entries) != 1 || bt.Entries[0].Req != a {
		t.Fatalf("new prefill joined under the safety margin: %+v", bt.Entries)
	}
}

func TestVLLMPaddedLimit(t *testing.T) {
	s, err := New("vllm", Config{BlockSize: 16, NumBlocks: 1000, MaxBatchTokens: 512, BatchSizeCap: 8, Watermark: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(NewRequest(0, 0, 0, 100, 2))
	s.Add(NewRequest(1, 1, 0, 300, 2))
	bt := step(s, 0)
	if len(bt.Entries) != 1 {
		t.Fatalf("2 × 300 padded tokens exceed 512; got %d requests", len(bt.Entries))
	}
	// The next iteration is the second request's prefill: vllm prefers
	// prefills over decodes.
	bt = step(s, 10)
	if len(bt.Entries) != 1 || bt.Entries[0].Tokens != 300 {
		t.Fatalf("want the waiting prefill alone, got %+v", bt.Entries)
	}
	bt = step(s, 20)
	if len(bt.Entries) != 2 || bt.Entries[0].Tokens != 1 || bt.Entries[1].Tokens != 1 {
		t.Fatalf("want a decode batch of both, got %+v", bt.Entries)
	}
}

func TestSarathiChunks(t *testing.T) {
	s, err := New("sarathi", Config{BlockSize: 16, NumBlocks: 1000, ChunkSize: 128, BatchSizeCap: 8, Watermark: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRequest(0, 0, 0, 300, 2)
	s.Add(r)
	var chunks []int64
	for i := 0; i < 4 && !r.PrefillDone; i++ {
		bt := step(s, int64(i*10))
		chunks = append(chunks, bt.Entries[0].Tokens)
	}
	if len(chunks) != 3 || chunks[0] != 128 || chunks[1] != 128 || chunks[2] != 44 {
		t.Fatalf("chunks %v, want [128 128 44]", chunks)
	}
}

func TestRestartRecomputesGeneratedTokens(t *testing.T) {
	r := NewRequest(0, 0, 0, 10, 5)
	var b Batch
	b.add(r, 10)
	var got []int64
	emit := func(_ *Request, i, _ int64) { got = append(got, i) }
	b.Apply(1, emit)
	b.Reset()
	b.add(r, 1)
	b.Apply(2, emit)
	r.restart()
	if r.PrefillTarget != 12 || r.Processed != 0 {
		t.Fatalf("after restart prefill target %d processed %d, want 12 and 0", r.PrefillTarget, r.Processed)
	}
	b.Reset()
	b.add(r, 12)
	b.Apply(3, emit)
	if len(got) != 3 || got[2] != 2 {
		t.Fatalf("token indexes %v, want 0 1 2 (recompute yields the next token)", got)
	}
}

// A full cache makes the engine offload the newest request, which later
// recomputes everything it had and still yields all its tokens.
func TestHFOffloadsWhenFull(t *testing.T) {
	s, err := New("hf-cb-prefill-first", Config{BlockSize: 16, NumBlocks: 8, MaxBatchTokens: 4096})
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewRequest(0, 0, 0, 60, 40), NewRequest(1, 1, 0, 60, 40) // 4 blocks each, then growth
	s.Add(a)
	s.Add(b)
	var got [2]int64
	for i := 0; i < 500 && s.Pending(); i++ {
		var bt Batch
		if !s.Next(int64(i), &bt) {
			t.Fatalf("step %d: nothing schedulable with %d blocks free", i, s.KV().Free())
		}
		bt.Apply(int64(i), func(r *Request, _, _ int64) { got[r.Index]++ })
		s.Finish(&bt)
	}
	if got != [2]int64{40, 40} || s.KV().Used() != 0 {
		t.Fatalf("tokens %v, blocks left %d", got, s.KV().Used())
	}
	if s.(*hfSched).offloads == 0 || a.Restarts+b.Restarts == 0 {
		t.Fatal("no offload although 2 × 100 tokens cannot fit 128 slots")
	}
}

// A lone request whose tokens outgrow the whole cache is offloaded and
// retried once, then reported unschedulable (no endless offload loop); one
// that fits exactly completes.
func TestHFLoneRequestLimits(t *testing.T) {
	for _, c := range []struct {
		decode int64
		ok     bool
	}{{5, true}, {8, false}} { // 60 prompt + decode-1 cached tokens against 64 slots
		s, err := New("hf-cb-prefill-first", Config{BlockSize: 16, NumBlocks: 4, MaxBatchTokens: 4096})
		if err != nil {
			t.Fatal(err)
		}
		s.Add(NewRequest(0, 0, 0, 60, c.decode))
		var tokens int64
		stuck := false
		for i := 0; i < 100 && s.Pending(); i++ {
			var bt Batch
			if !s.Next(int64(i), &bt) {
				stuck = true
				break
			}
			bt.Apply(int64(i), func(*Request, int64, int64) { tokens++ })
			s.Finish(&bt)
		}
		if c.ok && (stuck || tokens != c.decode) {
			t.Fatalf("decode %d: stuck %v after %d tokens", c.decode, stuck, tokens)
		}
		if !c.ok && !stuck {
			t.Fatalf("decode %d: a request larger than the cache was not reported", c.decode)
		}
	}
}

// Vidur's restart of a request part-way through its chunked prefill: the
// part computed becomes its new prefill, whose completion produces no output
// token; the rest of the prompt is then computed one token per iteration,
// and token k comes when the counter passes prompt + k. hf-cb's restart
// recomputes the whole prompt instead.
func TestRestartPartWayThroughPrefill(t *testing.T) {
	type tok struct{ idx, at int64 }
	run := func(r *Request, chunks []int64, restartAfter int) []tok {
		var got []tok
		for i, c := range chunks {
			var b Batch
			b.add(r, c)
			b.Apply(int64(10*(i+1)), func(_ *Request, idx, _ int64) { got = append(got, tok{idx, int64(10 * (i + 1))}) })
			if i == restartAfter {
				r.restartVidur()
			}
		}
		return got
	}
	// Prompt 6, 3 output tokens. 4 of 6 computed, then restarted.
	r := NewRequest(0, 0, 0, 6, 3)
	got := run(r, []int64{4, 2, 2, 1, 1, 1, 1}, 0)
	want := []tok{{0, 50}, {1, 60}, {2, 70}}
	if len(got) != len(want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("tokens %v, want %v", got, want)
		}
	}
	if !r.Done || r.PrefillTarget != 4 || r.Restarts != 1 || r.FirstTokenNs != 50 || r.CompletionNs != 70 {
		t.Fatalf("request after run: %+v", r)
	}
	// While decoding: the re-prefill of prompt + generated yields the next token.
	r = NewRequest(0, 0, 0, 6, 3)
	got = run(r, []int64{6, 1, 8}, 1) // tokens 0, 1; restart; re-prefill 6+2 → token 2, done
	if len(got) != 3 || got[2] != (tok{2, 30}) || r.PrefillTarget != 8 {
		t.Fatalf("decode restart: tokens %v, target %d", got, r.PrefillTarget)
	}
	// hf-cb's restart keeps the whole prompt as the prefill to recompute.
	r = NewRequest(0, 0, 0, 6, 3)
	var b Batch
	b.add(r, 4)
	b.Apply(10, func(*Request, int64, int64) {})
	r.restart()
	if r.PrefillTarget != 6 {
		t.Fatalf("hf-cb restart mid-prefill: target %d, want the whole prompt", r.PrefillTarget)
	}
}
