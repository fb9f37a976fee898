package profile

import (
	"path/filepath"
	"testing"
)

// recordedH100 is the profile recorded on an H100 with stages/profile/run.py
// (see docs/profile.md); the simulator and the Vidur stage read it too.
var recordedH100 = filepath.Join("..", "..", "testdata", "profile", "h100")

func TestRecordedH100(t *testing.T) {
	if err := Validate(recordedH100); err != nil {
		t.Fatalf("recorded profile does not validate: %v", err)
	}
	p, err := Read(recordedH100)
	if err != nil {
		t.Fatal(err)
	}
	if p.Device != "h100" || p.Model != "Qwen/Qwen3-0.6B" {
		t.Fatalf("device/model = %s %s", p.Device, p.Model)
	}
	if len(p.MLP) < 200 || p.MLP[0].NumTokens != 1 || p.MLP[len(p.MLP)-1].NumTokens != 4096 {
		t.Fatalf("mlp grid: %d rows from %d to %d", len(p.MLP), p.MLP[0].NumTokens, p.MLP[len(p.MLP)-1].NumTokens)
	}
	r := p.MLP[0]
	if r.NHead != 16 || r.NKVHead != 8 || r.NEmbd != 1024 || r.NExpandedEmbd != 3072 || r.VocabSize != 151936 || !r.UseGatedMLP {
		t.Errorf("model shape in mlp.csv: %+v", r)
	}
	// Invariants of real timings: every op takes time, and a layer at 4096
	// tokens costs more than at 1 token.
	for _, row := range p.MLP {
		for _, op := range MLPOps {
			if row.TimeMs[op] <= 0 {
				t.Errorf("num_tokens %d: op %s time %v", row.NumTokens, op, row.TimeMs[op])
			}
		}
	}
	if last := p.MLP[len(p.MLP)-1]; last.LayerMs() <= 2*p.MLP[0].LayerMs() {
		t.Errorf("layer time at 4096 tokens %.4f ms is not well above 1 token %.4f ms", last.LayerMs(), p.MLP[0].LayerMs())
	}
	var prefill, decode int
	for _, a := range p.Attention {
		if a.BlockSize != 256 || a.NQHead != 16 || a.NKVHead != 8 || a.AttentionBackend != "paged|sdpa" {
			t.Fatalf("attention row shape: %+v", a)
		}
		if a.IsPrefill {
			prefill++
		} else {
			decode++
		}
	}
	if prefill < 50 || decode < 400 {
		t.Errorf("attention rows: %d prefill, %d decode", prefill, decode)
	}
	if len(p.ExtraOps(OpAttnPacked)) < 100 || len(p.ExtraOps(OpLMHead)) == 0 {
		t.Errorf("extra ops: %d packed, %d lm_head", len(p.ExtraOps(OpAttnPacked)), len(p.ExtraOps(OpLMHead)))
	}
	if p.CPU["engine_decode_step_wall"] <= p.CPU["engine_decode_step_gpu"] {
		t.Errorf("cpu overhead: %v", p.CPU)
	}
}

func BenchmarkReadRecorded(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Read(recordedH100); err != nil {
			b.Fatal(err)
		}
	}
}
