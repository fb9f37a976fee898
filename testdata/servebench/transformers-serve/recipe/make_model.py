"""Saves a random-weight model (bf16) of a config.json's architecture with a
tokenizer folder, for `transformers serve DIR`. EOS is disabled in its
generation config (eos_token_id -1, as gsim's real-bench runs), so every
request generates exactly max_tokens tokens.

usage: python3 make_model.py CONFIG_DIR TOKENIZER_DIR OUT_DIR
"""
import shutil
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig


def main(cfg_dir, tok_dir, out):
    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(cfg_dir)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(do_sample=False, eos_token_id=-1, pad_token_id=151643)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{tok_dir}/{name}", f"{out}/{name}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
