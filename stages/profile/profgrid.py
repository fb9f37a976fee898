"""Pure parts of the profile runner: parameters, grids, statistics, Vidur's
CSV layout and device names. Importable without torch, so CI tests it with
plain python3.
"""

import csv
import json
import math
import os
import statistics
import sys

# gsim's runners share the GPU identity code (stages/common/gpuident.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))
from gpuident import SMI_QUERY, device_identity, smi_gpus  # noqa: E402,F401

STATS = ("min", "max", "mean", "median", "std")

# Vidur's op names and column order (vidur/profiling/mlp and attention).
MLP_OPS = (
    "emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
    "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add",
)
MLP_SHAPE_COLUMNS = (
    "n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size",
    "use_gated_mlp", "num_tokens", "num_tensor_parallel_workers",
)
ATTENTION_OPS = (
    "attn_input_reshape", "attn_kv_cache_save", "attn_prefill", "attn_decode", "attn_output_reshape",
)
ATTENTION_SHAPE_COLUMNS = (
    "n_embd", "n_q_head", "n_kv_head", "block_size", "num_tensor_parallel_workers",
    "max_model_len", "batch_size", "prefill_chunk_size", "kv_cache_size", "is_prefill",
    "attention_backend",
)
CPU_OVERHEAD_COLUMNS = ("name", "batch_size", "samples", "median_ms", "mean_ms", "min_ms", "max_ms", "std_ms")
EXTRA_OPS_COLUMNS = ("op", "num_tokens", "kv_tokens", "samples", "median_ms", "mean_ms", "min_ms", "max_ms", "std_ms")

ATTENTION_BACKEND = "paged|sdpa"

DEFAULTS = {
    "model": "Qwen/Qwen3-0.6B",
    # model_dir: a folder with config.json; relative to the repository root.
    "model_dir": "stages/models/Qwen3-0.6B",
    "max_tokens": 4096,          # largest num_tokens for the token-parallel ops
    "max_seq_len": 4096,         # largest kv_cache_size / prefill chunk + kv
    "max_batch_size": 128,       # largest decode batch
    "max_kv_tokens": 262144,     # cap on batch_size * (kv_cache_size + 1) (cache capacity)
    "block_size": 256,           # transformers' ContinuousBatchingConfig default
    "mlp_repeats": 20,           # Vidur: ACTIVE_STEPS = 20 for the MLP
    "attention_repeats": 10,     # Vidur uses 5; 10 steadies the median
    "warmup": 2,                 # Vidur: WARMUP_STEPS = 2
    "cpu_overhead": True,        # time the real engine's steps (transformers continuous batching)
    "cpu_batch_sizes": [1, 8, 32],
    "quick": False,              # a small grid for smoke tests
    "seed": 0,
    "hardware": "",              # if set, the Vidur device name the GPU must have
    "time_budget_s": 480,  # attention grid points past this many seconds are skipped (and listed)
}


class ParamError(ValueError):
    pass


def resolve_params(params):
    """Defaults merged with params; unknown names are errors so a typo is not
    silently a default."""
    unknown = sorted(set(params) - set(DEFAULTS) - {"source", "path", "python"})
    if unknown:
        raise ParamError("unknown profile parameter(s): %s; known: %s" % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    p = dict(DEFAULTS)
    p.update({k: v for k, v in params.items() if k in DEFAULTS})
    for k in ("max_tokens", "max_seq_len", "max_batch_size", "max_kv_tokens", "block_size",
              "mlp_repeats", "attention_repeats", "time_budget_s"):
        if not isinstance(p[k], int) or isinstance(p[k], bool) or p[k] < 1:
            raise ParamError("%s must be a positive integer, got %r" % (k, p[k]))
    if not isinstance(p["warmup"], int) or p["warmup"] < 0:
        raise ParamError("warmup must be a non-negative integer, got %r" % (p["warmup"],))
    if "/" not in p["model"]:
        raise ParamError("model must be org/name, got %r" % (p["model"],))
    return p


# --- grids -----------------------------------------------------------------

def num_tokens_grid(max_tokens, quick=False):
    """Vidur's NUM_TOKENS_SPACE (dense at small sizes, sparser above),
    ascending, capped at max_tokens."""
    if quick:
        space = [1, 2, 4, 8, 16, 64, 256, 1024]
    else:
        space = ([1, 2, 4] + list(range(8, 1024, 8)) + list(range(1024, 2048 + 1, 16))
                 + list(range(2048, 4096 + 1, 32)) + list(range(4096, 8192 + 1, 64))
                 + list(range(8192, 16384 + 1, 128)))
    return sorted({n for n in space if n <= max_tokens})


def decode_batch_grid(max_batch_size, quick=False):
    """Every batch size to 8, then steps widening with the size. Vidur takes
    every size to 128; this keeps the file small and the run short, and the
    time is smooth in the batch size between these points."""
    if quick:
        space = [1, 2, 4, 16]
    else:
        space = list(range(1, 9)) + [10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
                                     160, 192, 224, 256]
    return [b for b in space if b <= max_batch_size]


def kv_grid(max_seq_len, quick=False):
    """Cached-context lengths for decode rows (Vidur: every 32 to 1024, then
    every 64; here a geometric-ish subset of the same points)."""
    if quick:
        space = [32, 256, 1024]
    else:
        space = [32, 64, 96, 128, 192, 256, 384, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048,
                 2560, 3072, 3584, 4096, 6144, 8192]
    return [k for k in space if k <= max_seq_len]


def prefill_chunk_grid(max_seq_len, quick=False):
    if quick:
        space = [16, 128, 512]
    else:
        space = [16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192]
    return [c for c in space if c <= max_seq_len]


def prefill_kv_grid(chunk, max_seq_len, quick=False):
    """Cached prefix lengths for a prefill chunk: 0 (a fresh prompt) and
    multiples of the chunk as chunked prefill produces them, thinned to
    powers of two of the chunk count."""
    out = [0]
    m = 1
    while chunk * m + chunk <= max_seq_len:
        out.append(chunk * m)
        m *= 2
    if quick:
        out = out[:2]
    return out


def attention_inputs(p):
    """(is_prefill, batch_size, prefill_chunk_size, kv_cache_size) in the order
    to measure, filtered by Vidur's validity rules and the cache capacity."""
    quick = p["quick"]
    out = []
    for c in prefill_chunk_grid(p["max_seq_len"], quick):
        for kv in prefill_kv_grid(c, p["max_seq_len"], quick):
            if c + kv <= p["max_seq_len"]:
                out.append((True, 1, c, kv))
    for b in decode_batch_grid(p["max_batch_size"], quick):
        for kv in kv_grid(p["max_seq_len"], quick):
            if b * (kv + 1) <= p["max_kv_tokens"]:
                out.append((False, b, 0, kv))
    return out


def packed_grid(p):
    """(total query tokens, total key tokens) of one packed attention call.
    transformers' paged|sdpa runs ONE sdpa over every request of a step,
    with a block-diagonal mask, so the step's attention cost depends on these
    two totals whatever the mix of prefills and decodes."""
    if p["quick"]:
        qs, ks = [1, 64, 512], [512, 4096]
    else:
        qs = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
        ks = [64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144]
    out = []
    for q in qs:
        if q > p["max_tokens"]:
            continue
        for k in ks:
            if q <= k <= p["max_kv_tokens"]:
                out.append((q, k))
    return out


# --- statistics and CSV ----------------------------------------------------

def stats(times_ms):
    """Vidur's five statistics (numpy's population std), in ms."""
    if not times_ms:
        raise ValueError("no samples")
    n = len(times_ms)
    mean = sum(times_ms) / n
    var = sum((t - mean) ** 2 for t in times_ms) / n
    return {
        "min": min(times_ms),
        "max": max(times_ms),
        "mean": mean,
        "median": statistics.median(times_ms),
        "std": math.sqrt(var),
    }


def fmt(v):
    """Times rounded to 1 ns (CUDA events resolve about 0.5 us), written
    without exponent noise so files stay small and diffable."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("non-finite value %r" % v)
        s = "%.6f" % v
        s = s.rstrip("0").rstrip(".")
        return s if s not in ("", "-0") else "0"
    return str(v)


def stat_columns(ops):
    return ["time_stats.%s.%s" % (op, s) for op in ops for s in STATS]


def mlp_header():
    return stat_columns(MLP_OPS) + list(MLP_SHAPE_COLUMNS)


def attention_header():
    return stat_columns(ATTENTION_OPS) + list(ATTENTION_SHAPE_COLUMNS)


def _stat_cells(ops, time_stats):
    cells = []
    for op in ops:
        st = time_stats.get(op)
        if st is None:
            cells.extend([""] * len(STATS))
        else:
            # Round first, then order-fix: rounding can never put the median
            # outside [min, max] because all four round the same way.
            cells.extend(fmt(float(st[s])) for s in STATS)
    return cells


def model_shape(config):
    """Vidur's shape columns from a Hugging Face config dict."""
    return {
        "n_head": config["num_attention_heads"],
        "n_kv_head": config.get("num_key_value_heads") or config["num_attention_heads"],
        "n_embd": config["hidden_size"],
        "n_expanded_embd": config["intermediate_size"],
        "vocab_size": config["vocab_size"],
        "use_gated_mlp": True,
        "head_dim": config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
        "num_layers": config["num_hidden_layers"],
    }


def write_mlp_csv(path, rows, shape):
    """rows: [{"num_tokens": n, "time_stats": {op: stats}}] ascending."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(mlp_header())
        for r in sorted(rows, key=lambda r: r["num_tokens"]):
            w.writerow(_stat_cells(MLP_OPS, r["time_stats"]) + [
                fmt(shape["n_head"]), fmt(shape["n_kv_head"]), fmt(shape["n_embd"]),
                fmt(shape["n_expanded_embd"]), fmt(shape["vocab_size"]), fmt(bool(shape["use_gated_mlp"])),
                fmt(r["num_tokens"]), "1",
            ])


def write_attention_csv(path, rows, shape, block_size, max_model_len):
    """rows: [{"is_prefill", "batch_size", "prefill_chunk_size",
    "kv_cache_size", "time_stats"}]."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(attention_header())
        for r in rows:
            w.writerow(_stat_cells(ATTENTION_OPS, r["time_stats"]) + [
                fmt(shape["n_embd"]), fmt(shape["n_head"]), fmt(shape["n_kv_head"]), fmt(block_size), "1",
                fmt(max_model_len), fmt(r["batch_size"]), fmt(r["prefill_chunk_size"]),
                fmt(r["kv_cache_size"]), fmt(bool(r["is_prefill"])), ATTENTION_BACKEND,
            ])


def write_cpu_csv(path, rows):
    """rows: [{"name", "batch_size", "samples_ms": [...]}] or with "stats"."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CPU_OVERHEAD_COLUMNS)
        for r in rows:
            st = r["stats"]
            w.writerow([r["name"], fmt(r["batch_size"]), fmt(r["samples"]), fmt(float(st["median"])),
                        fmt(float(st["mean"])), fmt(float(st["min"])), fmt(float(st["max"])), fmt(float(st["std"]))])


def write_extra_csv(path, rows):
    """rows: [{"op", "num_tokens", "kv_tokens", "samples", "stats"}]."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(EXTRA_OPS_COLUMNS)
        for r in rows:
            st = r["stats"]
            w.writerow([r["op"], fmt(r["num_tokens"]), fmt(r["kv_tokens"]), fmt(r["samples"]),
                        fmt(float(st["median"])), fmt(float(st["mean"])), fmt(float(st["min"])),
                        fmt(float(st["max"])), fmt(float(st["std"]))])


def device_name(gpu_name):
    """Vidur's device name for a CUDA device name, or None."""
    n = gpu_name.lower()
    for sub, dev in (("h200", "h200"), ("h100", "h100"), ("a100", "a100"), ("a40", "a40")):
        if sub in n:
            return dev
    return None


def compute_dir(out_dir, device, model):
    return os.path.join(out_dir, "profiling", "compute", device, *model.split("/"))


def progress_line(done, total, msg):
    return "##gsim progress %d %d %s" % (done, total, msg)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
