#!/usr/bin/env python3
"""Profile Qwen3's operations on this GPU in Vidur's layout.

    python3 stages/profile/run.py --spec spec.json
    python3 stages/profile/run.py --out DIR [--quick] [--param k=v ...]

Writes <out>/profiling/compute/<device>/<org>/<model>/{mlp,attention}.csv,
<out>/extra_ops.csv, <out>/cpu_overhead.csv and <out>/profile_meta.json.
See stages/profile/README.md and docs/profile.md for what each op holds.
Exit codes, as stages/real_bench's: 0 ok, 2 bad input, 3 the GPU is not
with.hardware, 4 no CUDA torch or no GPU visible.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import profgrid as pg  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
T_START = time.time()

# Shared with stages/real_bench, so gsim tells both refusals apart the same way.
EXIT_BAD_INPUT = 2
EXIT_HARDWARE_MISMATCH = 3
EXIT_NO_CUDA = 4


def log(*a):
    print(*a, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", help="gsim stage spec (JSON: params, out_dir, base_dir)")
    ap.add_argument("--out", help="output folder (without --spec)")
    ap.add_argument("--quick", action="store_true", help="small grid, for smoke tests")
    ap.add_argument("--param", action="append", default=[], help="k=v (JSON value) parameter override")
    a = ap.parse_args(argv)
    params, out, base = {}, a.out, REPO
    if a.spec:
        with open(a.spec) as f:
            spec = json.load(f)
        params = dict(spec.get("params") or {})
        out = out or spec["out_dir"]
        base = spec.get("base_dir") or REPO
    if not out:
        ap.error("need --spec or --out")
    for kv in a.param:
        k, _, v = kv.partition("=")
        try:
            params[k] = json.loads(v)
        except ValueError:
            params[k] = v
    if a.quick:
        params["quick"] = True
    return pg.resolve_params(params), out, base


# --- timing ----------------------------------------------------------------

class Timer:
    """CUDA-event timing of a sequence of ops with the CPU kept out of it.

    Before the timed repeats the GPU is held in a spin kernel long enough for
    the CPU to enqueue every timed launch, so the events measure back-to-back
    GPU execution, as kernel-level profilers (Vidur's kineto mode) do, and not
    Python's launch rate. Launch cost is measured separately (cpu_overhead)."""

    def __init__(self, torch):
        self.torch = torch
        self.has_sleep = hasattr(torch.cuda, "_sleep")
        self.cycles_per_ms = self._calibrate() if self.has_sleep else 0

    def _calibrate(self):
        t = self.torch
        t.cuda.synchronize()
        s, e = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        n = 5_000_000
        t.cuda._sleep(n // 10)
        s.record()
        t.cuda._sleep(n)
        e.record()
        e.synchronize()
        return n / max(s.elapsed_time(e), 1e-3)

    def run(self, seq, repeats, warmup):
        """seq: list of (op name, fn). Returns {op: [ms per repeat]}, summing
        ops that appear more than once in seq (e.g. two residual adds)."""
        t = self.torch
        for _ in range(max(1, warmup)):
            for _, fn in seq:
                fn()
        t.cuda.synchronize()
        # Estimate the CPU time to enqueue the repeats and hold the GPU that long.
        c0 = time.perf_counter()
        for _, fn in seq:
            fn()
        cpu_ms = (time.perf_counter() - c0) * 1e3
        t.cuda.synchronize()
        events = [[t.cuda.Event(enable_timing=True) for _ in range(len(seq) + 1)] for _ in range(repeats)]
        if self.has_sleep:
            hold_ms = min(200.0, cpu_ms * repeats * 1.5 + 0.5)
            t.cuda._sleep(int(hold_ms * self.cycles_per_ms))
        for r in range(repeats):
            ev = events[r]
            ev[0].record()
            for i, (_, fn) in enumerate(seq):
                fn()
                ev[i + 1].record()
        t.cuda.synchronize()
        out = {}
        for r in range(repeats):
            per = {}
            for i, (name, _) in enumerate(seq):
                per[name] = per.get(name, 0.0) + events[r][i].elapsed_time(events[r][i + 1])
            for name, v in per.items():
                out.setdefault(name, []).append(v)
        return out


# --- the model's pieces ----------------------------------------------------

def build(torch, p, cfg_dict):
    from transformers import AutoConfig
    from transformers.models.qwen3 import modeling_qwen3 as mq

    model_dir = p["model_dir"]
    if not os.path.isabs(model_dir):
        model_dir = os.path.join(REPO, model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    config._attn_implementation = "sdpa"
    torch.manual_seed(p["seed"])
    dev = torch.device("cuda")
    with dev:
        layer = mq.Qwen3DecoderLayer(config, layer_idx=0).to(torch.bfloat16).eval()
        rotary = mq.Qwen3RotaryEmbedding(config=config)
        emb = torch.nn.Embedding(config.vocab_size, config.hidden_size).to(torch.bfloat16)
        norm = mq.Qwen3RMSNorm(config.hidden_size, eps=config.rms_norm_eps).to(torch.bfloat16)
        lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False).to(torch.bfloat16)
    return config, layer, rotary, emb, norm, lm_head, mq


def mlp_sequence(torch, n, config, layer, rotary, mq):
    """One decoder layer's token-parallel ops at n tokens, as Qwen3's modeling
    code runs them (attention itself excluded: attention.csv holds it)."""
    a = layer.self_attn
    d = config.head_dim
    H = config.num_attention_heads
    dev = "cuda"
    st = {}
    h0 = torch.randn(1, n, config.hidden_size, device=dev, dtype=torch.bfloat16)
    pos = torch.arange(n, device=dev).unsqueeze(0)
    cos, sin = rotary(h0, pos)
    attn_out = torch.randn(1, n, H * d, device=dev, dtype=torch.bfloat16)

    def ln1():
        st["x"] = layer.input_layernorm(h0)

    def pre_proj():
        x = st["x"]
        st["q"], st["k"], st["v"] = a.q_proj(x), a.k_proj(x), a.v_proj(x)

    def rope():
        hs = (1, n, -1, d)
        q = a.q_norm(st["q"].view(hs)).transpose(1, 2)
        k = a.k_norm(st["k"].view(hs)).transpose(1, 2)
        st["vv"] = st["v"].view(hs).transpose(1, 2)
        st["q2"], st["k2"] = mq.apply_rotary_pos_emb(q, k, cos, sin)

    def post_proj():
        st["o"] = a.o_proj(attn_out)

    def add1():
        st["h"] = h0 + st["o"]

    def ln2():
        st["x2"] = layer.post_attention_layernorm(st["h"])

    m = layer.mlp

    def up():
        st["g"], st["u"] = m.gate_proj(st["x2"]), m.up_proj(st["x2"])

    def act():
        st["a"] = m.act_fn(st["g"]) * st["u"]

    def down():
        st["dn"] = m.down_proj(st["a"])

    def add2():
        st["h2"] = st["h"] + st["dn"]

    return [("input_layernorm", ln1), ("attn_pre_proj", pre_proj), ("attn_rope", rope),
            ("attn_post_proj", post_proj), ("add", add1), ("post_attention_layernorm", ln2),
            ("mlp_up_proj", up), ("mlp_act", act), ("mlp_down_proj", down), ("add", add2)]


class PagedAttention:
    """transformers' paged|sdpa attention for one layer (integrations/
    sdpa_paged.py with PagedAttentionCache.update): index_copy_ the new K/V
    into a flat paged cache, index_select every request's K/V back (skipped
    when no request has cached tokens), repeat K/V heads for GQA, and one
    scaled_dot_product_attention over all packed queries and keys with the
    step's block-diagonal bias mask, sliced from a preallocated buffer."""

    def __init__(self, torch, config, p):
        self.torch = torch
        self.H, self.KV, self.d = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.groups = self.H // self.KV
        self.block = p["block_size"]
        # Room for every grid point even when each request's last page is
        # only partly used.
        cap = p["max_kv_tokens"] + (p["max_batch_size"] + 2) * self.block + p["max_tokens"]
        cap = -(-cap // self.block) * self.block
        self.cache_tokens = cap
        dev = "cuda"
        self.k_cache = torch.empty(cap, self.KV, self.d, device=dev, dtype=torch.bfloat16)
        self.v_cache = torch.empty(cap, self.KV, self.d, device=dev, dtype=torch.bfloat16)
        self.q_max = max(p["max_tokens"], p["max_batch_size"], p["max_seq_len"])
        # The engine's mask buffer is (max_batch_tokens, num_pages + max_batch_tokens).
        self.mask_width = -(-(cap + self.q_max) // 16) * 16
        self.mask_buf = None
        self.scaling = self.d ** -0.5

    def _mask(self, q_lens, k_lens):
        t = self.torch
        q_tot, k_tot = sum(q_lens), sum(k_lens)
        if self.mask_buf is None:
            self.mask_buf = t.empty(1, 1, self.q_max, self.mask_width, device="cuda", dtype=t.bfloat16)
        m = self.mask_buf[..., :q_tot, :k_tot]
        m.fill_(t.finfo(t.bfloat16).min)
        qo = ko = 0
        for ql, kl in zip(q_lens, k_lens):
            past = kl - ql
            # causal block: query i (0-based in its chunk) sees keys [0, past + i]
            qi = t.arange(ql, device="cuda").unsqueeze(1)
            kj = t.arange(kl, device="cuda").unsqueeze(0)
            blk = t.where(kj <= qi + past, 0.0, t.finfo(t.bfloat16).min).to(t.bfloat16)
            m[0, 0, qo:qo + ql, ko:ko + kl] = blk
            qo += ql
            ko += kl
        return m

    def sequence(self, q_lens, k_lens, op):
        """Timed ops for one step whose requests have q_lens new tokens and
        k_lens total keys (past + new). op names the attention kernel's
        column: attn_prefill or attn_decode."""
        t = self.torch
        q_tot, k_tot = sum(q_lens), sum(k_lens)
        H, KV, d = self.H, self.KV, self.d
        g = t.Generator(device="cpu").manual_seed(q_tot * 7919 + k_tot)
        # Scatter each request's pages over the cache as an allocator would.
        n_pages = self.cache_tokens // self.block
        perm = t.randperm(n_pages, generator=g)
        write, read = [], []
        page_i = 0
        for ql, kl in zip(q_lens, k_lens):
            need = -(-kl // self.block)
            pages = perm[t.arange(page_i, page_i + need) % n_pages]
            page_i += need
            slots = (pages.unsqueeze(1) * self.block + t.arange(self.block)).reshape(-1)[:kl]
            read.append(slots)
            write.append(slots[kl - ql:])
        write_index = t.cat(write).to("cuda")
        has_read = any(kl > ql for ql, kl in zip(q_lens, k_lens))
        read_index = t.cat(read).to("cuda") if has_read else None
        mask = self._mask(q_lens, k_lens)
        # Shapes as they leave rotary embedding: [1, heads, q, d], non-contiguous.
        query = t.randn(1, q_tot, H, d, device="cuda", dtype=t.bfloat16).transpose(1, 2)
        key = t.randn(1, q_tot, KV, d, device="cuda", dtype=t.bfloat16).transpose(1, 2)
        value = t.randn(1, q_tot, KV, d, device="cuda", dtype=t.bfloat16).transpose(1, 2)
        st = {}

        def kv_save():
            ks = key.transpose(1, 2).squeeze(0)
            vs = value.transpose(1, 2).squeeze(0)
            self.k_cache.index_copy_(0, write_index, ks)
            self.v_cache.index_copy_(0, write_index, vs)
            st["ks"], st["vs"] = ks, vs

        def input_reshape():
            st["q"] = query.contiguous()

        def attend():
            if read_index is None:
                k, v = st["ks"], st["vs"]
            else:
                k = t.index_select(self.k_cache, 0, read_index)
                v = t.index_select(self.v_cache, 0, read_index)
            k = k.transpose(0, 1).unsqueeze(0)
            v = v.transpose(0, 1).unsqueeze(0)
            if self.groups > 1:
                k = k[:, :, None].expand(1, KV, self.groups, k.shape[2], d).reshape(1, H, k.shape[2], d)
                v = v[:, :, None].expand(1, KV, self.groups, v.shape[2], d).reshape(1, H, v.shape[2], d)
            st["o"] = t.nn.functional.scaled_dot_product_attention(
                st["q"], k.contiguous(), v.contiguous(), attn_mask=mask, dropout_p=0.0,
                scale=self.scaling, is_causal=False)

        def output_reshape():
            st["out"] = st["o"].transpose(1, 2).contiguous().reshape(1, q_tot, -1).contiguous()

        return [("attn_kv_cache_save", kv_save), ("attn_input_reshape", input_reshape),
                (op, attend), ("attn_output_reshape", output_reshape)]


# --- the stages of a profile -----------------------------------------------

def profile_mlp(torch, timer, p, parts, progress):
    config, layer, rotary, emb, norm, lm_head, mq = parts
    rows, extra = [], []
    grid = pg.num_tokens_grid(p["max_tokens"], p["quick"])
    with torch.inference_mode():
        for i, n in enumerate(grid):
            seq = mlp_sequence(torch, n, config, layer, rotary, mq)
            ids = torch.randint(0, config.vocab_size, (1, n), device="cuda")
            pos = torch.arange(n, device="cuda").unsqueeze(0)
            h = torch.randn(1, n, config.hidden_size, device="cuda", dtype=torch.bfloat16)
            seq = [("emb", lambda: emb(ids))] + seq
            times = timer.run(seq, p["mlp_repeats"], p["warmup"])
            rows.append({"num_tokens": n, "time_stats": {op: pg.stats(v) for op, v in times.items()}})
            # Once per forward, outside the layers; Vidur has no columns for these.
            # lm_head and sampling run on one row per request (logits_to_keep),
            # so their num_tokens is the number of requests in the step.
            once = [("rotary_emb", lambda: rotary(h, pos)), ("final_norm", lambda: norm(h))]
            if n <= max(256, p["max_batch_size"]):
                st = {}

                def head():
                    st["logits"] = lm_head(h).float()

                once += [("lm_head", head), ("sample_argmax", lambda: torch.argmax(st["logits"], dim=-1))]
            t2 = timer.run(once, p["mlp_repeats"], p["warmup"])
            for op, v in t2.items():
                extra.append({"op": op, "num_tokens": n, "kv_tokens": 0, "samples": len(v), "stats": pg.stats(v)})
            progress(i + 1, len(grid), "mlp num_tokens=%d" % n)
    return rows, extra


def profile_attention(torch, timer, p, parts, progress):
    config = parts[0]
    attn = PagedAttention(torch, config, p)
    inputs = pg.attention_inputs(p)
    packed = pg.packed_grid(p)
    total = len(inputs) + len(packed)
    rows, extra, skipped = [], [], []
    with torch.inference_mode():
        for i, (is_prefill, b, chunk, kv) in enumerate(inputs):
            if time.time() - T_START > p["time_budget_s"]:
                skipped.append({"is_prefill": is_prefill, "batch_size": b, "prefill_chunk_size": chunk,
                                "kv_cache_size": kv, "error": "time_budget_s exceeded"})
                continue
            if is_prefill:
                q_lens, k_lens, op = [chunk], [chunk + kv], "attn_prefill"
            else:
                q_lens, k_lens, op = [1] * b, [kv + 1] * b, "attn_decode"
            try:
                seq = attn.sequence(q_lens, k_lens, op)
                times = timer.run(seq, p["attention_repeats"], p["warmup"])
            except torch.OutOfMemoryError as e:
                skipped.append({"is_prefill": is_prefill, "batch_size": b, "prefill_chunk_size": chunk,
                                "kv_cache_size": kv, "error": str(e)[:200]})
                log("attention: skipped %s b=%d chunk=%d kv=%d: out of memory" % (op, b, chunk, kv))
                torch.cuda.empty_cache()
                continue
            rows.append({"is_prefill": is_prefill, "batch_size": b, "prefill_chunk_size": chunk,
                         "kv_cache_size": kv, "time_stats": {o: pg.stats(v) for o, v in times.items()}})
            if i % 10 == 0:
                progress(i + 1, total, "attention %s b=%d chunk=%d kv=%d" % (op, b, chunk, kv))
        for j, (q, k) in enumerate(packed):
            if time.time() - T_START > p["time_budget_s"]:
                skipped.append({"packed_q": q, "packed_k": k, "error": "time_budget_s exceeded"})
                continue
            # q requests of one new token over equal shares of k keys, the
            # engine's shape for a decode batch; a prefill-heavy mix of the same
            # totals costs the same in the sdpa kernel (dense bias mask).
            per = max(1, k // q)
            q_lens, k_lens = [1] * q, [per] * q
            try:
                seq = attn.sequence(q_lens, k_lens, "attn_packed")
                times = timer.run(seq, p["attention_repeats"], p["warmup"])
            except torch.OutOfMemoryError as e:
                skipped.append({"packed_q": q, "packed_k": k, "error": str(e)[:200]})
                log("attention: skipped packed q=%d k=%d: out of memory" % (q, k))
                torch.cuda.empty_cache()
                continue
            tot = [sum(x) for x in zip(*times.values())]
            extra.append({"op": "attn_packed", "num_tokens": q, "kv_tokens": sum(k_lens), "samples": len(tot),
                          "stats": pg.stats(tot)})
            if j % 10 == 0:
                progress(len(inputs) + j + 1, total, "attention packed q=%d k=%d" % (q, k))
    return rows, extra, skipped


def profile_cpu(torch, p, mlp_rows, attn_rows, extra_rows, shape, progress):
    """Wall time of the real engine's decode steps (transformers continuous
    batching, paged|sdpa, default settings) against the GPU time the profile
    predicts for the same steps: the difference is the per-step CPU cost."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    model_dir = p["model_dir"] if os.path.isabs(p["model_dir"]) else os.path.join(REPO, p["model_dir"])
    cfg = AutoConfig.from_pretrained(model_dir)
    torch.manual_seed(p["seed"])
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="paged|sdpa")
    model.eval()
    prompt, new = 128, 64
    out = []
    mlp_by_n = {r["num_tokens"]: r for r in mlp_rows}
    ex = {(r["op"], r["num_tokens"]): r["stats"]["median"] for r in extra_rows}
    for bi, b in enumerate(p["cpu_batch_sizes"]):
        inputs = [[(7 * i + j) % 30000 + 1000 for j in range(prompt)] for i in range(b)]
        gc = GenerationConfig(max_new_tokens=new, do_sample=False, eos_token_id=-1, pad_token_id=0)
        t0 = time.perf_counter()
        res = model.generate_batch(inputs=inputs, generation_config=gc, record_timestamps=True, progress_bar=False)
        wall = time.perf_counter() - t0
        gaps = []
        for r in res.values():
            ts = r.timestamps or []
            # skip the first gaps: other requests' prefills can share those steps
            gaps.extend((ts[i] - ts[i - 1]) * 1e3 for i in range(4, len(ts)))
        if not gaps:
            continue
        out.append({"name": "engine_decode_step_wall", "batch_size": b, "samples": len(gaps), "stats": pg.stats(gaps)})
        # GPU time the profile gives for a decode step of b requests at the median context.
        kv = prompt + new // 2
        gpu = None
        if b in mlp_by_n:
            layer = sum(mlp_by_n[b]["time_stats"][op]["median"] for op in pg.MLP_OPS if op != "emb")
            dec = [r for r in attn_rows if not r["is_prefill"] and r["batch_size"] == b]
            if dec:
                near = min(dec, key=lambda r: abs(r["kv_cache_size"] - kv))
                att = sum(s["median"] for s in near["time_stats"].values())
                gpu = (shape["num_layers"] * (layer + att) + mlp_by_n[b]["time_stats"]["emb"]["median"]
                       + ex.get(("rotary_emb", b), 0) + ex.get(("final_norm", b), 0)
                       + ex.get(("lm_head", b), 0) + ex.get(("sample_argmax", b), 0))
        if gpu is not None:
            out.append({"name": "engine_decode_step_gpu", "batch_size": b, "samples": 1,
                        "stats": pg.stats([gpu])})
            over = [g - gpu for g in gaps]
            out.append({"name": "engine_decode_step_overhead", "batch_size": b, "samples": len(over),
                        "stats": pg.stats(over)})
        log("cpu overhead b=%d: %d gaps, wall median %.3f ms, gpu %s ms, total %.2fs"
            % (b, len(gaps), pg.stats(gaps)["median"], "%.3f" % gpu if gpu else "?", wall))
        progress(bi + 1, len(p["cpu_batch_sizes"]), "engine steps b=%d" % b)
    del model
    torch.cuda.empty_cache()
    return out


def versions(torch):
    v = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        import transformers
        v["transformers"] = transformers.__version__
    except Exception:
        pass
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        v["nvidia_smi"] = q.stdout.strip()
    except Exception:
        pass
    return v


def main(argv=None):
    p, out, _base = parse_args(argv if argv is not None else sys.argv[1:])
    t_start = time.time()
    try:
        import torch
    except ImportError as e:
        log("profile: cannot import torch (%s). This stage measures the GPU: run gsim on a machine with an "
            "NVIDIA GPU and CUDA torch (or point with.python / $GSIM_PYTHON at such an interpreter), or use "
            "source: recorded with a recorded profile folder." % e)
        return EXIT_NO_CUDA

    if not torch.cuda.is_available():
        log("profile: no CUDA device; this stage needs a GPU (or use source: recorded)")
        return EXIT_NO_CUDA
    gpu = torch.cuda.get_device_name(0)
    device = pg.device_name(gpu)
    if device is None:
        log("profile: GPU %r has no Vidur device name (a100, a40, h100, h200)" % gpu)
        return EXIT_HARDWARE_MISMATCH
    if p["hardware"] and p["hardware"] != device:
        log("profile: with.hardware is %s but this GPU is %r (%s); run on that GPU or change hardware"
            % (p["hardware"], gpu, device))
        return EXIT_HARDWARE_MISMATCH
    torch.backends.cuda.matmul.allow_tf32 = False
    with open(os.path.join(REPO, p["model_dir"], "config.json") if not os.path.isabs(p["model_dir"])
              else os.path.join(p["model_dir"], "config.json")) as f:
        cfg = json.load(f)
    shape = pg.model_shape(cfg)
    cdir = pg.compute_dir(out, device, p["model"])
    os.makedirs(cdir, exist_ok=True)
    log("profile: %s (%s) model %s -> %s" % (gpu, device, p["model"], cdir))

    timer = Timer(torch)
    log("timer: spin kernel %s, %.0f cycles/ms" % ("on" if timer.has_sleep else "off", timer.cycles_per_ms))
    parts = build(torch, p, cfg)
    timings = {}

    def progress(stage, weight_lo, weight_hi):
        def f(done, total, msg):
            frac = weight_lo + (weight_hi - weight_lo) * done / max(total, 1)
            print(pg.progress_line(int(frac * 1000), 1000, msg), flush=True)
        return f

    t0 = time.time()
    mlp_rows, extra = profile_mlp(torch, timer, p, parts, progress("mlp", 0.0, 0.3))
    timings["mlp_s"] = time.time() - t0
    pg.write_mlp_csv(os.path.join(cdir, "mlp.csv"), mlp_rows, shape)
    log("mlp: %d rows in %.1fs" % (len(mlp_rows), timings["mlp_s"]))

    t0 = time.time()
    attn_rows, attn_extra, skipped = profile_attention(torch, timer, p, parts, progress("attention", 0.3, 0.85))
    timings["attention_s"] = time.time() - t0
    pg.write_attention_csv(os.path.join(cdir, "attention.csv"), attn_rows, shape, p["block_size"], p["max_seq_len"])
    extra += attn_extra
    pg.write_extra_csv(os.path.join(out, "extra_ops.csv"), extra)
    log("attention: %d rows + %d packed in %.1fs" % (len(attn_rows), len(attn_extra), timings["attention_s"]))
    del parts
    torch.cuda.empty_cache()

    cpu_rows, cpu_error = [], None
    if p["cpu_overhead"]:
        t0 = time.time()
        try:
            cpu_rows = profile_cpu(torch, p, mlp_rows, attn_rows, extra, shape, progress("cpu", 0.85, 1.0))
        except Exception as e:  # the GPU profile stands without it; say why
            cpu_error = "%s: %s" % (type(e).__name__, e)
            traceback.print_exc()
        timings["cpu_overhead_s"] = time.time() - t0
        if cpu_rows:
            pg.write_cpu_csv(os.path.join(out, "cpu_overhead.csv"), cpu_rows)

    timings["total_s"] = time.time() - t_start
    props = torch.cuda.get_device_properties(0)
    meta = {
        "schema_version": 1,
        "generator": "stages/profile/run.py",
        "model": p["model"],
        "device": device,
        "gpu": gpu,
        # The physical GPU gsim gave this stage (its CUDA device 0).
        "gpu_device": pg.device_identity(os.environ, gpu, str(getattr(props, "uuid", "") or ""), pg.smi_gpus()),
        "gpu_memory_mib": props.total_memory // (1 << 20),
        "sm_count": props.multi_processor_count,
        "versions": versions(torch),
        "params": p,
        "grid": {
            "num_tokens": pg.num_tokens_grid(p["max_tokens"], p["quick"]),
            "decode_batch_sizes": pg.decode_batch_grid(p["max_batch_size"], p["quick"]),
            "decode_kv_cache_sizes": pg.kv_grid(p["max_seq_len"], p["quick"]),
            "prefill_chunk_sizes": pg.prefill_chunk_grid(p["max_seq_len"], p["quick"]),
            "attention_rows": len(attn_rows),
            "packed_points": len(attn_extra),
        },
        "timing": {
            "method": "cuda events around each op, GPU held by a spin kernel while the CPU enqueues the repeats",
            "mlp_repeats": p["mlp_repeats"], "attention_repeats": p["attention_repeats"], "warmup": p["warmup"],
            "statistic_used": "median",
        },
        "dtype": "bfloat16",
        "attention_backend": pg.ATTENTION_BACKEND,
        "head_dim": shape["head_dim"],
        "num_layers": shape["num_layers"],
        "run_seconds": timings,
        "cpu_overhead_error": cpu_error,
        "skipped": skipped,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
    }
    pg.write_json(os.path.join(out, "profile_meta.json"), meta)
    print(pg.progress_line(1000, 1000, "done"), flush=True)
    log("profile: done in %.1fs" % timings["total_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
