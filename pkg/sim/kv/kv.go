// Package kv is the simulator's paged KV-cache block accounting: a fixed pool
// of blocks of block_size tokens, handed out to requests and given back when
// they finish or are preempted. It only counts; which request holds how many
// blocks is kept by the scheduler's request state.
package kv

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Manager counts allocated blocks of a fixed pool.
type Manager struct {
	BlockSize int64
	NumBlocks int64
	used      int64
	peak      int64
}

// New returns a manager; both sizes must be positive.
func New(blockSize, numBlocks int64) (*Manager, error) {
	if blockSize <= 0 || numBlocks <= 0 {
		return nil, fmt.Errorf("kv: block_size (%d) and num_blocks (%d) must be positive", blockSize, numBlocks)
	}
	return &Manager{BlockSize: blockSize, NumBlocks: numBlocks}, nil
}

// Used is the number of allocated blocks.
func (m *Manager) Used() int64 { return m.used }

// Free is the number of unallocated blocks.
func (m *Manager) Free() int64 { return m.NumBlocks - m.used }

// Peak is the largest number of blocks ever allocated at once.
func (m *Manager) Peak() int64 { return m.peak }

// Alloc takes n blocks if they are free and reports whether it did.
func (m *Manager) Alloc(n int64) bool {
	if n < 0 {
		panic("kv: negative allocation")
	}
	if m.used+n > m.NumBlocks {
		return false
	}
	m.used += n
	if m.used > m.peak {
		m.peak = m.used
	}
	return true
}

// Release gives n blocks back. Releasing more than is held is a bookkeeping
// bug, so it panics rather than hiding a leak.
func (m *Manager) Release(n int64) {
	if n < 0 || n > m.used {
		panic(fmt.Sprintf("kv: release %d blocks with %d allocated", n, m.used))
	}
	m.used -= n
}

// BlocksFor is the number of blocks that hold tokens tokens.
func (m *Manager) BlocksFor(tokens int64) int64 {
	return (tokens + m.BlockSize - 1) / m.BlockSize
}

// Model is the part of a decoder-only model's shape that sizes its KV cache
// and weights.
type Model struct {
	Name              string `json:"-"`
	HiddenSize        int64  `json:"hidden_size"`
	IntermediateSize  int64  `json:"intermediate_size"`
	NumLayers         int64  `json:"num_hidden_layers"`
	NumHeads          int64  `json:"num_attention_heads"`
	NumKVHeads        int64  `json:"num_key_value_heads"`
	HeadDim           int64  `json:"head_dim"`
	VocabSize         int64  `json:"vocab_size"`
	TieWordEmbeddings bool   `json:"tie_word_embeddings"`
	TorchDtype        string `json:"torch_dtype"`
}

// ReadModel reads a Hugging Face config.json. head_dim is taken as written:
// Qwen3 sets it to 128 although hidden/heads is 64, and deriving it would
// halve the KV cache.
func ReadModel(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model config: %w", err)
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("model config %s: %w", path, err)
	}
	if m.NumKVHeads == 0 {
		m.NumKVHeads = m.NumHeads
	}
	if m.HeadDim == 0 && m.NumHeads > 0 {
		m.HeadDim = m.HiddenSize / m.NumHeads
	}
	if m.NumLayers <= 0 || m.NumKVHeads <= 0 || m.HeadDim <= 0 || m.HiddenSize <= 0 {
		return nil, fmt.Errorf("model config %s: needs num_hidden_layers, num_attention_heads, hidden_size (and head_dim where it is not hidden/heads)", path)
	}
	return &m, nil
}

// DtypeBytes is the width of the model's weights and cache elements.
func (m *Model) DtypeBytes() int64 {
	switch m.TorchDtype {
	case "float32":
		return 4
	case "float8", "int8":
		return 1
	}
	return 2
}

// KVBytesPerToken is key + value for every layer and KV head.
func (m *Model) KVBytesPerToken() int64 {
	return 2 * m.NumLayers * m.NumKVHeads * m.HeadDim * m.DtypeBytes()
}

// NumParams counts the weights of a Llama/Qwen-style decoder (gated MLP,
// RMSNorm, optional q/k norms ignored as negligible).
func (m *Model) NumParams() int64 {
	h, hd := m.HiddenSize, m.HeadDim
	attn := h*m.NumHeads*hd + 2*h*m.NumKVHeads*hd + m.NumHeads*hd*h
	mlp := 3 * h * m.IntermediateSize
	perLayer := attn + mlp + 2*h
	emb := m.VocabSize * h
	if !m.TieWordEmbeddings {
		emb *= 2
	}
	return m.NumLayers*perLayer + emb + h
}

// Sizing derives a block count from GPU memory the way paged engines do:
// what is left of memory × utilisation after weights and an activation
// reserve, divided by the bytes of one block.
type Sizing struct {
	GPUMemoryBytes    int64
	MemoryUtilization float64
	ActivationReserve int64
	BlockSize         int64
}

// NumBlocks returns the derived pool size, or an error saying why none fits.
func (s Sizing) NumBlocks(m *Model) (int64, error) {
	budget := int64(math.Floor(float64(s.GPUMemoryBytes)*s.MemoryUtilization)) -
		m.NumParams()*m.DtypeBytes() - s.ActivationReserve
	perBlock := m.KVBytesPerToken() * s.BlockSize
	if budget < perBlock {
		return 0, fmt.Errorf("kv: %d bytes of GPU memory at utilisation %.2f leave no room for one %d-byte KV block after %d bytes of weights and %d of activations; raise gpu_memory_gb or memory_utilization, or set num_blocks",
			s.GPUMemoryBytes, s.MemoryUtilization, perBlock, m.NumParams()*m.DtypeBytes(), s.ActivationReserve)
	}
	return budget / perBlock, nil
}
