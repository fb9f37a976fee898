"""The torch side of the real bench: builds Qwen3 from the model card, runs
transformers' continuous batching (ContinuousBatchingManager) under an
open-loop arrival replay, and instruments its step loop at runtime (wrapping
the batch processor's and scheduler's methods on the instance; the library
files are never edited)."""

import gc
import os
import platform
import subprocess
import sys
import threading
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
from transformers.generation.configuration_utils import ContinuousBatchingConfig
from transformers.generation.continuous_batching.requests import RequestStatus

import bench_core as core

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def now_ns():
    # perf_counter is CLOCK_MONOTONIC on Linux, the clock transformers stamps
    # tokens with, so engine timestamps and ours share one time base.
    return time.perf_counter_ns()


def hardware_info():
    name = torch.cuda.get_device_name(0)
    driver = ""
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        pass
    props = torch.cuda.get_device_properties(0)
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu_model": cpu, "cpu_count": os.cpu_count(),
        "gpu_name": name, "gpu_count": torch.cuda.device_count(), "gpu_memory_bytes": props.total_memory,
        "sm_count": props.multi_processor_count, "driver": driver, "cuda": torch.version.cuda,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "host": platform.node(),
    }


def model_key(p):
    return (p["model_config"], p["weights"], p["dtype"], p["attn_implementation"], p["seed"])


def build_model(p, runner_dir):
    cfg_dir = p["model_config"] or os.path.join(runner_dir, "..", "models", os.path.basename(p["model"]))
    dtype = DTYPES[p["dtype"]]
    if p["weights"] == "dummy":
        cfg = AutoConfig.from_pretrained(cfg_dir)
        torch.manual_seed(p["seed"])
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=p["attn_implementation"])
    else:
        model = AutoModelForCausalLM.from_pretrained(p["weights"], dtype=dtype,
                                                     attn_implementation=p["attn_implementation"]).cuda()
    model.eval()
    return model, os.path.abspath(cfg_dir)


def cb_config(p):
    kw = dict(
        block_size=p["block_size"], num_blocks=p["num_blocks"], max_batch_tokens=p["max_batch_tokens"],
        scheduler_type=p["scheduler"], allow_block_sharing=p["allow_block_sharing"],
        use_cuda_graph=p["cuda_graphs"], use_async_batching=p["async_batching"],
        default_compile_level=1 if p["compile"] else 0, seed=p["seed"],
    )
    if p["memory_share"] is not None:
        kw["max_memory_percent"] = p["memory_share"]
    if p["max_requests_per_batch"] is not None:
        kw["max_requests_per_batch"] = p["max_requests_per_batch"]
    if p["safety_margin"] is not None:
        kw["safety_margin"] = p["safety_margin"]
    return ContinuousBatchingConfig(**kw)


class StepRecorder:
    """Wraps one batch processor's prepare_next_batch / update_batch and its
    scheduler's schedule_batch. A step starts when prepare_next_batch is
    entered (scheduling included) and ends when update_batch returns (new
    tokens are on the host and requests updated).

    Where this transformers version has them, it also wraps the model
    runner's compute_batch, the IO object's get_graph / set_graph and its
    device-to-host wait, to record per step where the host time goes and
    which CUDA graph the step used (step_detail.csv). A hook it cannot
    install is reported once in `hooks` and its columns stay -1: the run
    itself never depends on them."""

    def __init__(self, bp):
        self.bp = bp
        self.recording = False
        self.steps = []          # (start_ns, end_ns, batch)
        self.details = []        # one dict per recorded step (core.DETAIL_COLUMNS)
        self.tokens = {}         # request id -> [token end-of-step ns]
        self.hooks = {}          # hook name -> "ok" or why it is missing
        self.graphs_warm = self.graphs_end = None  # graph keys cached when the replay starts / ends
        self._start = None
        self._batch = None
        self._d = None
        sched = bp.scheduler
        orig_schedule, orig_prepare, orig_update = sched.schedule_batch, bp.prepare_next_batch, bp.update_batch
        io = getattr(bp, "inputs_and_outputs", None)
        self.io = io

        def schedule_batch(token_budget, cache_budget):
            d = self._d
            if d is not None:
                d["waiting"] = _len(getattr(sched, "waiting_requests", None))
                d["active"] = _len(getattr(sched, "active_requests", None))
                d["free_blocks"] = _call(getattr(bp.cache, "get_num_free_blocks", None))
            pre = {rid: st.status for rid, st in sched.active_requests.items()}
            res = orig_schedule(token_budget, cache_budget)
            fs_list = res[0]
            if d is not None:
                d["sched_end_ns"] = now_ns()
                if isinstance(res, tuple) and len(res) >= 4:
                    d["decode_fast_path"] = int(bool(res[1]))
                    d["q_tokens"] = _int(res[2])
                    d["kv_read"] = _int(res[3])
            if fs_list:
                batch = []
                for fs in fs_list:
                    st = fs.state
                    is_decode = pre.get(st.request_id) == RequestStatus.DECODING
                    # position_offset is advanced when the batch tensors are
                    # built, after scheduling: here it is the cached length.
                    batch.append((is_decode, fs.query_length, st.position_offset + fs.query_length,
                                  st.request_id, fs.has_new_token))
                self._batch = batch
            return res

        def prepare_next_batch():
            t = now_ns()
            self._batch = None
            self._d = core.new_detail(t) if self.recording else None
            ok = orig_prepare()
            if ok:
                self._start = t
                d = self._d
                if d is not None and io is not None:
                    d["prep_end_ns"] = now_ns()
                    # After prepare_batch_tensors: the padded sizes the graph
                    # is keyed by, and the unpadded longest KV of the batch
                    # (get_model_kwargs pads it later).
                    d["q_padded"] = _int(getattr(io, "num_q_tokens", None))
                    d["kv_padded"] = _int(getattr(io, "max_kv_read", None))
                    d["max_seqlen_k"] = _max_value(getattr(io, "max_seqlen_k", None))
                    d["max_seqlen_q"] = _int(getattr(io, "max_seqlen_q", None))
            else:
                self._d = None
            return ok

        def update_batch():
            t_in = now_ns()
            orig_update()
            t = now_ns()
            if self.recording and self._batch is not None:
                self.steps.append((self._start, t, self._batch))
                for b in self._batch:
                    if b[4]:
                        self.tokens.setdefault(b[3], []).append(t)
                # One detail per recorded step, so the two files align even
                # for a step whose preparation began before recording did.
                d = self._d if self._d is not None else core.new_detail(self._start)
                d["update_start_ns"] = t_in
                d["end_ns"] = t
                g = getattr(io, "graphs", None)
                d["graphs_cached"] = _len(getattr(g, "_storage", None))
                self.details.append(d)
            self._batch = None
            self._d = None

        sched.schedule_batch = schedule_batch
        bp.prepare_next_batch = prepare_next_batch
        bp.update_batch = update_batch
        # Python's garbage collector stops every thread (the GIL), the
        # engine's included: its pauses inside a step are stalls the step's
        # shape does not explain.
        self._gc_t = None

        def on_gc(phase, info):
            if phase == "start":
                self._gc_t = now_ns()
            elif self._gc_t is not None:
                d = self._d
                if d is not None:
                    d["gc_count"] += 1
                    d["gc_ns"] += now_ns() - self._gc_t
                self._gc_t = None
        self._on_gc = on_gc
        gc.callbacks.append(on_gc)
        try:
            self._install_optional(bp, io)
        except Exception as e:  # the extra columns are optional; the run is not
            self.hooks["install"] = f"failed: {e!r}"

    def _install_optional(self, bp, io):
        runner = getattr(bp, "model_runner", None)
        compute = getattr(runner, "compute_batch", None)
        if callable(compute):
            def compute_batch(*a, **kw):
                t = now_ns()
                r = compute(*a, **kw)
                if self._d is not None:
                    self._d["compute_start_ns"] = t
                    self._d["compute_end_ns"] = now_ns()
                return r
            runner.compute_batch = compute_batch
            self.hooks["compute_batch"] = "ok"
        else:
            self.hooks["compute_batch"] = "batch processor has no model_runner.compute_batch"

        get_graph, set_graph = getattr(io, "get_graph", None), getattr(io, "set_graph", None)
        key_fn = getattr(io, "_get_graph_key", None)
        if callable(get_graph) and callable(set_graph) and callable(key_fn):
            def wrapped_get_graph(*a, **kw):
                g = get_graph(*a, **kw)
                d = self._d
                if d is not None:
                    key = _call(key_fn)
                    if isinstance(key, tuple):
                        d["graph_key"] = "x".join(str(int(k)) for k in key)
                        if len(key) >= 3:
                            d["seqlen_k_padded"] = _int(key[2])
                    d["graph_hit"] = 0 if g is None else 1
                return g

            def wrapped_set_graph(*a, **kw):
                r = set_graph(*a, **kw)
                if self._d is not None:
                    self._d["graph_captured"] = 1
                return r
            io.get_graph = wrapped_get_graph
            io.set_graph = wrapped_set_graph
            self.hooks["graphs"] = "ok"
        else:
            self.hooks["graphs"] = "IO object has no get_graph/set_graph/_get_graph_key"

        sync = getattr(io, "retrieve_device_outputs", None)
        if callable(sync):
            def retrieve_device_outputs(*a, **kw):
                r = sync(*a, **kw)
                if self._d is not None:
                    self._d["sync_end_ns"] = now_ns()
                return r
            io.retrieve_device_outputs = retrieve_device_outputs
            self.hooks["retrieve_device_outputs"] = "ok"
        else:
            self.hooks["retrieve_device_outputs"] = "IO object has no retrieve_device_outputs"

    def close(self):
        """Removes the garbage-collector callback."""
        try:
            gc.callbacks.remove(self._on_gc)
        except ValueError:
            pass

    def graph_keys(self):
        """The CUDA graph keys cached now, oldest first (LRU order)."""
        g = getattr(self.io, "graphs", None)
        st = getattr(g, "_storage", None)
        if st is None:
            return None
        try:
            return ["x".join(str(int(k)) for k in key) for key in list(st.keys())]
        except Exception:
            return None

    def graph_capacity(self):
        return _int(getattr(getattr(self.io, "graphs", None), "max_size", None))


def _int(v):
    try:
        return int(v)
    except Exception:
        return -1


def _len(v):
    try:
        return len(v)
    except Exception:
        return -1


def _call(fn):
    try:
        return fn() if callable(fn) else -1
    except Exception:
        return -1


def _max_value(v):
    try:
        if isinstance(v, dict):
            return max(int(x) for x in v.values()) if v else -1
        return int(v)
    except Exception:
        return -1


def resolved_engine(p, mgr):
    cfg = mgr.continuous_batching_config
    bp = mgr.batch_processor
    eng = {k: p[k] for k in ("attn_implementation", "scheduler", "dtype", "weights", "compile", "timestamps",
                             "warmup_requests", "seed", "allow_block_sharing", "switch_interval_s")}
    eng.update({
        "engine": "transformers-continuous-batching",
        "block_size": bp.cache.block_size, "num_blocks": bp.cache.num_blocks,
        "max_batch_tokens": bp.cache.max_batch_tokens,
        "max_requests_per_batch": cfg.max_requests_per_batch,
        "safety_margin": bp.scheduler.safety_margin,
        "cuda_graphs": list(cfg.use_cuda_graph) if isinstance(cfg.use_cuda_graph, tuple) else cfg.use_cuda_graph,
        "async_batching": bool(cfg.use_async_batching),
        "max_memory_percent": cfg.max_memory_percent,
        "q_padding_interval_size": cfg.q_padding_interval_size,
        "kv_padding_interval_size": cfg.kv_padding_interval_size,
        "max_blocks_per_request": cfg.max_blocks_per_request,
        "do_sample": False, "eos": "disabled (eos_token_id=-1)",
        "scheduler_class": type(bp.scheduler).__name__,
        "max_cached_graphs": getattr(cfg, "max_cached_graphs", None),
        "max_queue_size": getattr(cfg, "max_queue_size", None),
    })
    return eng


def run_one(model, p, reqs, seed_tokens, log):
    """Replays reqs open loop. Returns (results, steps, t0_ns, lateness, engine, wall_ns, warmup_s)."""
    gen = GenerationConfig(max_new_tokens=16, do_sample=False, eos_token_id=-1, pad_token_id=0)
    mgr = model.init_continuous_batching(generation_config=gen, continuous_batching_config=cb_config(p))
    t = time.time()
    mgr.warmup()  # creates the batch processor (and captures graphs when they are on)
    warm_s = time.time() - t
    rec = StepRecorder(mgr.batch_processor)
    mgr.start()
    results = {}
    done = threading.Event()
    expected = [0]
    lock = threading.Lock()

    def collect():
        while not done.is_set():
            out = mgr.get_result(timeout=0.05)
            if out is None:
                if not mgr.is_running() and mgr.output_router.output_queue.empty():
                    time.sleep(0.05)
                continue
            if out.is_finished():
                with lock:
                    results[out.request_id] = out

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    try:
        # Warm-up: not recorded. All at once, shaped like the workload's head.
        nw = p["warmup_requests"]
        for i in range(nw):
            r = reqs[i % len(reqs)]
            mgr.add_request(input_ids=core.prompt_ids(seed_tokens + 7, 10_000_000 + i, r["prefill"]),
                            request_id=f"warmup-{i}", max_new_tokens=min(r["decode"], 64),
                            record_timestamps=p["timestamps"])
        deadline = time.time() + 300
        while nw and time.time() < deadline:
            with lock:
                if sum(1 for k in results if k.startswith("warmup-")) >= nw:
                    break
            time.sleep(0.01)
        with lock:
            results.clear()
        # Build every prompt before the clock starts so adding is cheap.
        prompts = {r["id"]: core.prompt_ids(seed_tokens, r["id"], r["prefill"]) for r in reqs}
        old_si = sys.getswitchinterval()
        if p["switch_interval_s"] > 0:
            sys.setswitchinterval(p["switch_interval_s"])
        graphs_warm = rec.graph_keys()
        rec.recording = True
        t0 = now_ns()
        actual = []
        total = len(reqs)
        timeout_ns = int(p["timeout_s"] * 1e9) if p["timeout_s"] > 0 else None
        for i, r in enumerate(reqs):
            target = t0 + r["arrival_ns"]
            while True:
                d = target - now_ns()
                if d <= 0:
                    break
                time.sleep(d / 1e9 - 0.0002 if d > 400_000 else 0)
            actual.append(now_ns() - t0)
            mgr.add_request(input_ids=prompts[r["id"]], request_id=str(r["id"]), max_new_tokens=r["decode"],
                            record_timestamps=p["timestamps"])
            if i % 20 == 0:
                with lock:
                    n = len(results)
                core.progress(n, total, f"added {i + 1}/{total}")
        last_report = 0
        while True:
            with lock:
                n = len(results)
            if n >= total:
                break
            if timeout_ns is not None and now_ns() - t0 > timeout_ns:
                log(f"timeout after {p['timeout_s']}s with {n}/{total} done: stopping")
                break
            if not mgr.is_running():
                log("generation thread stopped early")
                break
            if time.time() - last_report > 2:
                core.progress(n, total, "requests done")
                last_report = time.time()
            time.sleep(0.01)
        wall_ns = now_ns() - t0
        rec.recording = False
        rec.graphs_warm = graphs_warm
        rec.graphs_end = rec.graph_keys()
        sys.setswitchinterval(old_si)
        engine = resolved_engine(p, mgr)
    finally:
        rec.close()
        mgr.stop(block=True, timeout=30, hard_stop=True)
        done.set()
        collector.join(timeout=5)
        try:
            mgr.destroy()
        except Exception as e:  # cleanup only
            log(f"destroy: {e}")
    return results, rec, t0, actual, engine, wall_ns, warm_s


def to_results(reqs, outs, rec, t0, use_engine_ts):
    """Turns GenerationOutputs into core.assemble's results map."""
    res = {}
    for r in reqs:
        out = outs.get(str(r["id"]))
        step_times = [t - t0 for t in rec.tokens.get(str(r["id"]), [])]
        if out is None:
            res[r["id"]] = {"token_times_ns": step_times, "status": "failed", "error_type": "unfinished",
                            "error_message": "the request did not finish before the run stopped"}
            continue
        if use_engine_ts and out.timestamps is not None:
            times = [int(round(ts * 1e9)) - t0 for ts in out.timestamps]
        else:
            times = step_times
        ok = out.error is None and out.status == RequestStatus.FINISHED
        res[r["id"]] = {"token_times_ns": times, "status": "ok" if ok else "failed",
                        "error_type": "" if ok else "engine", "error_message": out.error or ""}
    return res
