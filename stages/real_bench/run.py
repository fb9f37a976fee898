#!/usr/bin/env python3
"""gsim's real GPU bench: replays a workload open loop on transformers'
continuous batching and writes the canonical run folder.

    python3 run.py --spec spec.json [--spec more.json ...]

Several specs run one after another in one process and share the model when
its settings match (recording sweeps without rebuilding it). Exit codes: 0 ok,
2 bad spec or workload, 3 GPU does not match `hardware:`, 4 no CUDA.
"""

import argparse
import datetime
import gc
import os
import sys
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_core as core  # noqa: E402


def log(msg):
    print(f"[real_bench {datetime.datetime.now(datetime.timezone.utc).strftime('%H:%M:%S')}] {msg}", flush=True)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prepare(spec_path):
    spec = core.load_spec(spec_path)
    p = core.resolve_params(spec.get("params"))
    wdir = spec["inputs"]["workload"][0]["dir"]
    reqs = core.read_workload(wdir)
    if not reqs:
        raise core.BenchError(f"{wdir}: the workload has no requests")
    return spec, p, wdir, reqs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", action="append", required=True, help="stage spec.json (repeatable)")
    ap.add_argument("--deadline", type=float, default=0,
                    help="unix time: skip (write nothing for) a spec whose last arrival + 20 s would pass it")
    args = ap.parse_args(argv)

    try:
        jobs = [prepare(s) for s in args.spec]
    except core.BenchError as e:
        print(f"real_bench: {e}", file=sys.stderr, flush=True)
        return e.exit_code

    try:
        import torch
    except ImportError as e:
        print(f"real_bench: cannot import torch ({e}). {core.NO_CUDA_MESSAGE}", file=sys.stderr, flush=True)
        return core.EXIT_NO_CUDA
    if not torch.cuda.is_available():
        print(f"real_bench: {core.NO_CUDA_MESSAGE}", file=sys.stderr, flush=True)
        return core.EXIT_NO_CUDA
    device_name = torch.cuda.get_device_name(0)
    for spec, p, _, _ in jobs:
        msg = core.check_hardware(p["hardware"], device_name, p["allow_hardware_mismatch"])
        if msg:
            print(f"real_bench: {spec.get('instance') or spec.get('stage') or 'stage'}: {msg}", file=sys.stderr,
                  flush=True)
            return core.EXIT_HARDWARE_MISMATCH

    import engine  # torch side, only once a GPU is known to be there

    hw = engine.hardware_info()
    # The physical GPU gsim gave this stage (its CUDA device 0), so runs on a
    # several-GPU machine say which one they measured.
    hw["device"] = core.device_identity(os.environ, hw["gpu_name"],
                                        str(getattr(torch.cuda.get_device_properties(0), "uuid", "") or ""),
                                        core.smi_gpus())
    log(f"GPU {hw['device']['index']} ({hw['device']['uuid'] or 'uuid unknown'}) {hw['gpu_name']} "
        f"driver {hw['driver']} CUDA {hw['cuda']} torch {hw['torch']} "
        f"transformers {hw['transformers']} python {hw['python']}")
    model, key, cfg_dir = None, None, None
    failed = 0
    for spec, p, wdir, reqs in jobs:
        name = spec.get("instance") or spec.get("stage") or spec["out_dir"]
        if args.deadline and time.time() + reqs[-1]["arrival_ns"] / 1e9 + 20 > args.deadline:
            log(f"{name}: skipped, it would not end before --deadline")
            failed += 1
            continue
        try:
            if engine.model_key(p) != key:
                model = None
                gc.collect()
                torch.cuda.empty_cache()
                log(f"building {p['model']} ({p['weights']} weights, {p['dtype']}, {p['attn_implementation']})")
                model, cfg_dir = engine.build_model(p, HERE)
                key = engine.model_key(p)
            digest = core.workload_digest(wdir)
            log(f"{name}: {len(reqs)} requests, workload {digest[:12]}, "
                f"last arrival {reqs[-1]['arrival_ns'] / 1e9:.2f}s")
            started = utc_now()
            outs, rec, t0, actual, eng, wall_ns, warm_s = engine.run_one(model, p, reqs, p["seed"], log)
            ended = utc_now()
            res = engine.to_results(reqs, outs, rec, t0, p["timestamps"])
            req_rows, tok_rows = core.assemble(reqs, res)
            step_rows = [core.step_row(i, s - t0, e - t0, b) for i, (s, e, b) in enumerate(rec.steps)]
            details = core.detail_rows(rec.details, t0) if len(rec.details) == len(rec.steps) else None
            summary = core.summarize(req_rows, wall_ns)
            late = core.lateness_stats([r["arrival_ns"] for r in reqs], actual)
            meta = {
                "schema_version": core.SCHEMA_VERSION,
                "run_id": spec.get("key") or uuid.uuid4().hex,
                "run_type": "real",
                "model": p["model"],
                "hardware": hw,
                "engine": eng,
                "workload_digest": digest,
                "started_at": started,
                "ended_at": ended,
                "extra": {
                    "arrival_lateness": late,
                    "summary": summary,
                    "timestamps": p["timestamps"],
                    "token_time_source": ("engine record_timestamps (time.perf_counter at token update)"
                                          if p["timestamps"] else "end of the engine step that produced the token"),
                    "warmup_s": round(warm_s, 3),
                    "declared_hardware": p["hardware"],
                    "model_config": cfg_dir,
                    "clock": "time.perf_counter_ns (CLOCK_MONOTONIC), ns since the replay started",
                    "prompts": "seeded random token ids in [0, 151643), seed = with.seed",
                    "step_detail": {
                        "file": core.STEP_DETAIL_FILE if details else None,
                        "hooks": rec.hooks,
                        "graph_capacity": rec.graph_capacity(),
                        "graphs_at_start": rec.graphs_warm,
                        "graphs_at_end": rec.graphs_end,
                    },
                },
            }
            core.write_run(spec["out_dir"], req_rows, tok_rows, step_rows, meta, details)
            log(f"{name}: {summary['num_ok']}/{summary['num_requests']} ok in {wall_ns / 1e9:.2f}s, "
                f"{summary['output_tokens_per_s']:.0f} out tok/s, {summary['requests_per_s']:.2f} req/s, "
                f"TTFT p50 {fmt_ms(summary['ttft_p50_ns'])} p99 {fmt_ms(summary['ttft_p99_ns'])}, "
                f"TPOT p50 {fmt_ms(summary['tpot_p50_ns'])} p99 {fmt_ms(summary['tpot_p99_ns'])}, "
                f"{len(step_rows)} steps, lateness p50 {late['p50_ns'] / 1e3:.0f}us p99 {late['p99_ns'] / 1e3:.0f}us "
                f"max {late['max_ns'] / 1e3:.0f}us; engine {eng}")
            if summary["num_failed"]:
                failed += 1
        except core.BenchError as e:
            print(f"real_bench: {name}: {e}", file=sys.stderr, flush=True)
            return e.exit_code
        except Exception:
            traceback.print_exc()
            failed += 1
        finally:
            outs = rec = None
            gc.collect()
            torch.cuda.empty_cache()
            log(f"GPU memory after {name}: {torch.cuda.memory_allocated() / 2**30:.1f} GiB allocated, "
                f"{torch.cuda.memory_reserved() / 2**30:.1f} GiB reserved")
    return 1 if failed else 0


def fmt_ms(ns):
    return "-" if ns is None else f"{ns / 1e6:.1f}ms"


if __name__ == "__main__":
    sys.exit(main())
