"""Writes a word-level tokenizer of Qwen3's vocabulary size (151936) for a
random-weight Qwen3-0.6B served by `transformers serve`.

The lent GPU machines have no internet, so Qwen's own tokenizer cannot be
loaded there. Timing does not depend on token values, only on counts, so a
word-level tokenizer does: every space-separated word is one token, the
common English words gsim's serve-bench builds prompts from come first, and
Qwen's special tokens sit at their real ids (151643 <|endoftext|>, 151644
<|im_start|>, 151645 <|im_end|>). A chat message costs its words plus 5
tokens of template. Standard library only.

usage: python3 make_tokenizer.py WORDS_FILE OUT_DIR
"""
import json
import os
import sys

VOCAB = 151936
SPECIAL = {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>"}


def main(words_file, out):
    words = []
    for w in open(words_file).read().split():
        if w not in words:
            words.append(w)
    words = ["<unk>", "user", "assistant", "system"] + [w for w in words if w not in ("user", "assistant", "system")]
    vocab = {w: i for i, w in enumerate(words)}
    i = len(words)
    while i < 151643:
        vocab[f"t{i}"] = i
        i += 1
    added = []
    for j in range(151643, VOCAB):
        tok = SPECIAL.get(j, f"<|extra_{j}|>")
        vocab[tok] = j
        added.append({"id": j, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": False},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 40960,
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>",
        "chat_template": "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}",
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
