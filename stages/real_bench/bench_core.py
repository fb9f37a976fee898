"""Pure parts of the real GPU bench: spec and workload reading, the workload
digest, engine params, hardware matching, arrival lateness, metric assembly
and CSV writing. Nothing here imports torch, so the unit tests run with a
plain python3 and the engine module stays small."""

import csv
import hashlib
import json
import math
import os
import sys

# gsim's runners share the GPU identity code (stages/common/gpuident.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))
from gpuident import SMI_QUERY, device_identity, smi_gpus  # noqa: E402,F401

SPEC_VERSION = 1
SCHEMA_VERSION = 1

EXIT_HARDWARE_MISMATCH = 3
EXIT_NO_CUDA = 4

TRACE_LENGTHS = "trace_lengths.csv"
TRACE_INTERVALS = "trace_intervals.csv"

REQUEST_COLUMNS = ["request_id", "arrival_time_ns", "first_token_time_ns", "ttft_ns", "completion_time_ns",
                   "num_prefill_tokens", "num_decode_tokens", "num_decode_tokens_actual", "status"]
REQUEST_ERROR_COLUMNS = ["error_type", "error_message"]
TOKEN_COLUMNS = ["request_id", "token_index", "token_time_ns", "token_latency_ns"]
STEP_COLUMNS = ["step", "start_ns", "end_ns", "num_prefill_tokens", "num_decode_tokens", "num_requests",
                "num_prefill_requests", "num_decode_requests", "num_context_tokens"]


# step_detail.csv: where each step's time went and which CUDA graph it used
# (engine.StepRecorder). Times are ns since the replay started; -1 where
# this transformers version offers no hook for it.
DETAIL_COLUMNS = ["step", "start_ns", "sched_end_ns", "prep_end_ns", "compute_start_ns", "compute_end_ns",
                  "sync_end_ns", "update_start_ns", "end_ns", "q_tokens", "kv_read", "max_seqlen_q",
                  "max_seqlen_k", "q_padded", "kv_padded", "seqlen_k_padded", "graph_key", "graph_hit",
                  "graph_captured", "graphs_cached", "decode_fast_path", "waiting", "active", "free_blocks",
                  "gc_count", "gc_ns"]
DETAIL_TIMES = ("start_ns", "sched_end_ns", "prep_end_ns", "compute_start_ns", "compute_end_ns", "sync_end_ns",
                "update_start_ns", "end_ns")
STEP_DETAIL_FILE = "step_detail.csv"


def new_detail(start_ns):
    """A step's detail record, every field unknown (-1) but its start."""
    d = {c: -1 for c in DETAIL_COLUMNS}
    d["start_ns"] = start_ns
    d["graph_key"] = ""
    d["graph_captured"] = 0
    d["gc_count"] = 0
    d["gc_ns"] = 0
    return d


def detail_rows(details, t0):
    """step_detail.csv rows: step numbers as in step_metrics.csv, times
    relative to t0 (unknown times stay -1)."""
    rows = []
    for i, d in enumerate(details):
        r = dict(d)
        r["step"] = i
        for c in DETAIL_TIMES:
            if r[c] is not None and r[c] >= 0:
                r[c] = r[c] - t0
            else:
                r[c] = -1
        rows.append(r)
    return rows


class BenchError(Exception):
    """A user-facing error: the message says what is wrong and what to do."""

    def __init__(self, msg, exit_code=2):
        super().__init__(msg)
        self.exit_code = exit_code


# Engine parameters (`with:` of a real-bench stage) and their defaults. None
# means "let transformers decide"; the resolved value is recorded in
# run_meta.json either way.
DEFAULT_PARAMS = {
    "model": "Qwen/Qwen3-0.6B",
    "model_config": "",          # folder with config.json; default: stages/models/<model basename>
    "weights": "dummy",          # "dummy" (seeded random init) or a local checkpoint folder
    "dtype": "bfloat16",
    "attn_implementation": "paged|sdpa",
    "scheduler": "fifo",         # fifo | prefill_first
    "max_batch_tokens": 8192,
    "block_size": 256,
    "num_blocks": 1024,          # set null to size the cache from memory_share
    "memory_share": None,        # fraction of free GPU memory for the cache (max_memory_percent)
    "max_requests_per_batch": None,
    "safety_margin": None,       # scheduler's free-block margin; None = scheduler default
    "allow_block_sharing": False,
    "cuda_graphs": True,         # null = transformers' heuristic (off for paged|sdpa), true/false to force
    "compile": False,
    "async_batching": None,
    "timestamps": True,          # engine-side per-token timestamps (record_timestamps)
    "warmup_requests": 8,
    "hardware": "h100",          # a100 | h100 | h200: the GPU this run must be on
    "allow_hardware_mismatch": False,
    "seed": 0,
    "switch_interval_s": 0.001,  # Python GIL switch interval while replaying
    "timeout_s": 0,              # > 0: stop the replay after this long, failing what is left
    "python": "",                # read by gsim's real-bench kind, not here
}

SCHEDULERS = ("fifo", "prefill_first")
HARDWARE = ("a100", "h100", "h200")
DTYPES = ("bfloat16", "float16", "float32")


def load_spec(path):
    """Reads a pkg/stage Spec JSON and checks what the runner relies on."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except OSError as e:
        raise BenchError(f"{path}: cannot read the spec: {e}")
    except json.JSONDecodeError as e:
        raise BenchError(f"{path}: line {e.lineno} column {e.colno}: not JSON: {e.msg}")
    if spec.get("schema_version") != SPEC_VERSION:
        raise BenchError(f"{path}: spec schema_version {spec.get('schema_version')!r}, this runner reads {SPEC_VERSION}")
    if not spec.get("out_dir"):
        raise BenchError(f"{path}: out_dir is empty (expected the folder to write the run into)")
    wl = (spec.get("inputs") or {}).get("workload") or []
    if len(wl) != 1 or not wl[0].get("dir"):
        raise BenchError(f"{path}: inputs.workload must hold exactly one workload folder "
                         f"(add `needs: [workload]` to the real-bench stage)")
    return spec


def resolve_params(params):
    """Fills defaults and checks types; unknown keys are errors so a typo is
    not silently a default."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise BenchError(f"with.{unknown[0]}: unknown parameter (known: {', '.join(sorted(DEFAULT_PARAMS))})")
    p = dict(DEFAULT_PARAMS)
    p.update(params)
    errs = []

    def bad(name, msg):
        errs.append(f"with.{name}: {msg}")

    if p["scheduler"] not in SCHEDULERS:
        bad("scheduler", f"{p['scheduler']!r} (expected one of {', '.join(SCHEDULERS)})")
    if str(p["hardware"]).lower() not in HARDWARE:
        bad("hardware", f"{p['hardware']!r} (expected one of {', '.join(HARDWARE)})")
    p["hardware"] = str(p["hardware"]).lower()
    if p["dtype"] not in DTYPES:
        bad("dtype", f"{p['dtype']!r} (expected one of {', '.join(DTYPES)})")
    for name in ("max_batch_tokens", "block_size", "num_blocks", "max_requests_per_batch"):
        v = p[name]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            bad(name, f"{v!r} (expected an integer >= 1 or null)")
    for name in ("warmup_requests", "seed"):
        v = p[name]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            bad(name, f"{v!r} (expected an integer >= 0)")
    for name in ("memory_share", "safety_margin"):
        v = p[name]
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1):
            bad(name, f"{v!r} (expected a number in [0, 1] or null)")
    for name in ("allow_block_sharing", "compile", "timestamps", "allow_hardware_mismatch"):
        if not isinstance(p[name], bool):
            bad(name, f"{p[name]!r} (expected true or false)")
    for name in ("cuda_graphs", "async_batching"):
        if p[name] is not None and not isinstance(p[name], bool):
            bad(name, f"{p[name]!r} (expected true, false or null)")
    for name in ("timeout_s", "switch_interval_s"):
        v = p[name]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            bad(name, f"{v!r} (expected a number >= 0)")
    if p["num_blocks"] is None and p["memory_share"] is None:
        bad("num_blocks", "null needs memory_share (the share of free GPU memory for the KV cache)")
    if errs:
        raise BenchError("; ".join(errs))
    return p


def read_csv_ints(path, columns):
    """Reads an integer CSV with exactly these columns; errors name the row."""
    try:
        f = open(path, newline="")
    except OSError as e:
        raise BenchError(f"{path}: {e}")
    with f:
        r = csv.reader(f)
        header = next(r, None)
        if header != columns:
            raise BenchError(f"{path}: row 1: header {header!r} (expected {','.join(columns)})")
        rows = []
        for i, rec in enumerate(r, start=2):
            if not rec:
                continue
            if len(rec) != len(columns):
                raise BenchError(f"{path}: row {i}: {len(rec)} fields (expected {len(columns)})")
            try:
                rows.append([int(x) for x in rec])
            except ValueError:
                col = next(c for c, x in zip(columns, rec) if not x.lstrip("-").isdigit())
                raise BenchError(f"{path}: row {i} column {col}: not an integer")
        return rows


def read_workload(wdir):
    """Returns the requests of a workload folder sorted by arrival (then id):
    dicts with id, prefill, decode, arrival_ns."""
    lp, ip = os.path.join(wdir, TRACE_LENGTHS), os.path.join(wdir, TRACE_INTERVALS)
    lengths = read_csv_ints(lp, ["request_id", "prompt_id", "num_prefill_tokens", "num_decode_tokens"])
    inter = read_csv_ints(ip, ["request_id", "inter_arrival_ns", "arrival_time_ns"])
    arr = {}
    for i, (rid, _, at) in enumerate(inter, start=2):
        if rid in arr:
            raise BenchError(f"{ip}: row {i} column request_id: {rid} appears twice")
        arr[rid] = at
    reqs = []
    seen = set()
    for i, (rid, _pid, np_, nd) in enumerate(lengths, start=2):
        if rid in seen:
            raise BenchError(f"{lp}: row {i} column request_id: {rid} appears twice")
        seen.add(rid)
        if rid not in arr:
            raise BenchError(f"{lp}: row {i}: request {rid} has no row in {TRACE_INTERVALS}")
        if np_ < 1 or nd < 1:
            raise BenchError(f"{lp}: row {i}: request {rid} needs >= 1 prefill and >= 1 decode token")
        reqs.append({"id": rid, "prefill": np_, "decode": nd, "arrival_ns": arr[rid]})
    if len(arr) != len(reqs):
        extra = sorted(set(arr) - seen)[0]
        raise BenchError(f"{ip}: request {extra} has no row in {TRACE_LENGTHS}")
    reqs.sort(key=lambda r: (r["arrival_ns"], r["id"]))
    return reqs


def workload_digest(wdir):
    """schema.WorkloadDigest: sha256 over trace_lengths.csv then
    trace_intervals.csv, each preceded by "<name>\\0<len>\\0"."""
    h = hashlib.sha256()
    for name in (TRACE_LENGTHS, TRACE_INTERVALS):
        with open(os.path.join(wdir, name), "rb") as f:
            b = f.read()
        h.update(f"{name}\x00{len(b)}\x00".encode())
        h.update(b)
    return h.hexdigest()


def hardware_kind(device_name):
    """Maps a CUDA device name to a100/h100/h200, or None."""
    n = device_name.upper()
    for kind in ("H200", "H100", "A100"):
        if kind in n:
            return kind.lower()
    return None


def check_hardware(declared, device_name, allow_mismatch):
    """Returns None when the run may go on, else the refusal message."""
    found = hardware_kind(device_name)
    if found == declared or allow_mismatch:
        return None
    return (f"hardware mismatch: the stage declares hardware: {declared} but this GPU is {device_name!r} "
            f"({found or 'not an A100, H100 or H200'}). Run the stage on a {declared.upper()}, change "
            f"`hardware:` to match, or set `allow_hardware_mismatch: true` to record it anyway "
            f"(run_meta.json keeps the GPU name).")


NO_CUDA_MESSAGE = ("no CUDA GPU is visible (torch.cuda.is_available() is False). The real-bench stage must run "
                   "on a machine with an NVIDIA GPU: run gsim there (or point `python:` / $GSIM_PYTHON at an "
                   "interpreter with CUDA torch), or use the `replay` kind with a recorded run folder.")


def prompt_ids(seed, request_id, n, vocab_low=0, vocab_high=151643):
    """Seeded random token ids below Qwen's first special token, so no
    prompt holds an EOS or control token. Pure Python for testability."""
    import random
    r = random.Random((seed * 1_000_003) ^ (request_id * 7919 + 17))
    return [r.randrange(vocab_low, vocab_high) for _ in range(n)]


def percentile(values, q):
    """Linear-interpolated percentile (numpy's default) of a non-empty list."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def lateness_stats(scheduled_ns, actual_ns):
    """Arrival lateness (actual add time - scheduled arrival) in ns."""
    late = [a - s for s, a in zip(scheduled_ns, actual_ns)]
    if not late:
        return {"p50_ns": 0, "p99_ns": 0, "max_ns": 0, "mean_ns": 0}
    return {"p50_ns": int(percentile(late, 50)), "p99_ns": int(percentile(late, 99)),
            "max_ns": int(max(late)), "mean_ns": int(sum(late) / len(late))}


def assemble(requests, results):
    """Builds canonical request and token rows.

    requests: workload requests (dicts from read_workload).
    results: request id -> dict(token_times_ns=[...], status="ok"|"failed",
    error_type, error_message); a request missing from results failed
    without output. Token times are ns since run start; they are made
    non-decreasing (engine timestamps of one request are already).
    """
    req_rows, tok_rows = [], []
    for r in sorted(requests, key=lambda r: r["id"]):
        res = results.get(r["id"]) or {"token_times_ns": [], "status": "failed",
                                       "error_type": "missing", "error_message": "no result from the engine"}
        times = list(res.get("token_times_ns") or [])
        for i in range(1, len(times)):
            times[i] = max(times[i], times[i - 1])
        status = res.get("status", "ok")
        if status == "ok" and len(times) != r["decode"]:
            status = "failed"
            res = dict(res, error_type="token_count",
                       error_message=f"generated {len(times)} tokens, expected {r['decode']}")
        first = times[0] if times else -1
        done = times[-1] if (times and status == "ok") else -1
        req_rows.append({
            "request_id": r["id"], "arrival_time_ns": r["arrival_ns"], "first_token_time_ns": first,
            "ttft_ns": first - r["arrival_ns"] if times else -1, "completion_time_ns": done,
            "num_prefill_tokens": r["prefill"], "num_decode_tokens": r["decode"],
            "num_decode_tokens_actual": len(times), "status": status,
            "error_type": res.get("error_type", "") if status != "ok" else "",
            "error_message": res.get("error_message", "") if status != "ok" else "",
        })
        prev = None
        for i, t in enumerate(times):
            tok_rows.append({"request_id": r["id"], "token_index": i, "token_time_ns": t,
                             "token_latency_ns": 0 if prev is None else t - prev})
            prev = t
    return req_rows, tok_rows


def summarize(req_rows, wall_ns):
    """Throughput and latency summary for run_meta.extra and logs."""
    ok = [r for r in req_rows if r["status"] == "ok"]
    toks = sum(r["num_decode_tokens_actual"] for r in req_rows)
    prefill = sum(r["num_prefill_tokens"] for r in ok)
    ttft = [r["ttft_ns"] for r in ok]
    tpot = [(r["completion_time_ns"] - r["first_token_time_ns"]) / (r["num_decode_tokens_actual"] - 1)
            for r in ok if r["num_decode_tokens_actual"] > 1]
    secs = wall_ns / 1e9 if wall_ns > 0 else float("nan")
    out = {
        "num_requests": len(req_rows), "num_ok": len(ok), "num_failed": len(req_rows) - len(ok),
        "duration_ns": int(wall_ns),
        "output_tokens_per_s": toks / secs if secs == secs else None,
        "total_tokens_per_s": (toks + prefill) / secs if secs == secs else None,
        "requests_per_s": len(ok) / secs if secs == secs else None,
    }
    for name, vals in (("ttft", ttft), ("tpot", tpot)):
        for q in (50, 90, 99):
            v = percentile(vals, q)
            out[f"{name}_p{q}_ns"] = int(v) if v is not None else None
    return out


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow([row[c] for c in columns])


def write_run(out_dir, req_rows, tok_rows, step_rows, meta, detail_rows=None):
    os.makedirs(out_dir, exist_ok=True)
    if detail_rows:
        write_csv(os.path.join(out_dir, STEP_DETAIL_FILE), DETAIL_COLUMNS, detail_rows)
    cols = REQUEST_COLUMNS
    if any(r["status"] != "ok" for r in req_rows):
        cols = REQUEST_COLUMNS + REQUEST_ERROR_COLUMNS
    write_csv(os.path.join(out_dir, "request_metrics.csv"), cols, req_rows)
    write_csv(os.path.join(out_dir, "token_metrics.csv"), TOKEN_COLUMNS, tok_rows)
    if step_rows is not None:
        write_csv(os.path.join(out_dir, "step_metrics.csv"), STEP_COLUMNS, step_rows)
    with open(os.path.join(out_dir, "run_meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


def step_row(step, start_ns, end_ns, batch):
    """One step_metrics row from a scheduled batch: a list of
    (is_decode, query_length, context_len_after) per request."""
    pre = [b for b in batch if not b[0]]
    dec = [b for b in batch if b[0]]
    return {
        "step": step, "start_ns": start_ns, "end_ns": end_ns,
        "num_prefill_tokens": sum(b[1] for b in pre), "num_decode_tokens": sum(b[1] for b in dec),
        "num_requests": len(batch), "num_prefill_requests": len(pre), "num_decode_requests": len(dec),
        "num_context_tokens": sum(b[2] for b in batch),
    }


def progress(done, total, msg=""):
    print(f"##gsim progress {done} {total} {msg}".rstrip(), flush=True)
