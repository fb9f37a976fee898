package kv

import (
	"path/filepath"
	"testing"
)

func TestAllocRelease(t *testing.T) {
	m, err := New(16, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Alloc(7) || m.Alloc(4) || !m.Alloc(3) {
		t.Fatal("allocation limits wrong")
	}
	if m.Free() != 0 || m.Peak() != 10 {
		t.Fatalf("free %d peak %d", m.Free(), m.Peak())
	}
	m.Release(10)
	if m.Used() != 0 {
		t.Fatal("blocks leaked")
	}
	if got := m.BlocksFor(17); got != 2 {
		t.Fatalf("BlocksFor(17) = %d", got)
	}
}

func TestQwen3Sizing(t *testing.T) {
	m, err := ReadModel(filepath.Join("..", "..", "..", "stages", "models", "Qwen3-0.6B", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// 2 × 28 layers × 8 KV heads × head_dim 128 × 2 bytes.
	if got := m.KVBytesPerToken(); got != 114688 {
		t.Fatalf("KV bytes/token = %d, want 114688 (head_dim must be 128, not 64)", got)
	}
	if p := m.NumParams(); p < 500e6 || p > 650e6 {
		t.Fatalf("params = %d, want about 0.6B", p)
	}
	n, err := Sizing{GPUMemoryBytes: 80 << 30, MemoryUtilization: 0.9, ActivationReserve: 2 << 30, BlockSize: 32}.NumBlocks(m)
	if err != nil {
		t.Fatal(err)
	}
	if n < 19000 || n > 21000 {
		t.Fatalf("blocks = %d", n)
	}
	if _, err := (Sizing{GPUMemoryBytes: 1 << 30, MemoryUtilization: 0.5, BlockSize: 32}).NumBlocks(m); err == nil {
		t.Fatal("no error for a GPU too small")
	}
}
