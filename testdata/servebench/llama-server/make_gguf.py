"""Writes a random-weight GGUF of the Qwen3 architecture (small: 4 layers,
hidden 256) with the GPT-2 byte-level BPE vocabulary copied from a
vocab-only GGUF, for llama.cpp's llama-server on a CPU. Timing depends on
shapes, not values; the small shapes keep a 2-core machine responsive.

Needs numpy and llama.cpp's gguf-py (PYTHONPATH=<llama.cpp>/gguf-py); it is
not part of gsim.

usage: python3 make_gguf.py <llama.cpp>/models/ggml-vocab-gpt-2.gguf OUT.gguf
"""
import sys

import numpy as np
import gguf

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN, CTX = 256, 4, 4, 2, 64, 768, 4096


def main(vocab_path, out):
    r = gguf.GGUFReader(vocab_path)
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode("utf-8", "replace") for i in f["tokenizer.ggml.tokens"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    merges = [bytes(f["tokenizer.ggml.merges"].parts[i]).decode("utf-8", "replace") for i in f["tokenizer.ggml.merges"].data]
    vocab = len(tokens)
    w = gguf.GGUFWriter(out, "qwen3")
    w.add_name("qwen3-small-random")
    w.add_context_length(CTX)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_freq_base(1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(50256)
    w.add_eos_token_id(50256)
    w.add_add_bos_token(False)
    rng = np.random.default_rng(0)

    def t(name, *shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    def ones(name, n):
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    t("token_embd.weight", vocab, HIDDEN)
    for i in range(LAYERS):
        p = f"blk.{i}."
        ones(p + "attn_norm.weight", HIDDEN)
        t(p + "attn_q.weight", HEADS * HEAD_DIM, HIDDEN)
        t(p + "attn_k.weight", KV_HEADS * HEAD_DIM, HIDDEN)
        t(p + "attn_v.weight", KV_HEADS * HEAD_DIM, HIDDEN)
        t(p + "attn_output.weight", HIDDEN, HEADS * HEAD_DIM)
        ones(p + "attn_q_norm.weight", HEAD_DIM)
        ones(p + "attn_k_norm.weight", HEAD_DIM)
        ones(p + "ffn_norm.weight", HIDDEN)
        t(p + "ffn_gate.weight", FFN, HIDDEN)
        t(p + "ffn_up.weight", FFN, HIDDEN)
        t(p + "ffn_down.weight", HIDDEN, FFN)
    ones("output_norm.weight", HIDDEN)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
