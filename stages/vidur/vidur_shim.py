#!/usr/bin/env python3
"""Run real Vidur (microsoft/vidur) for gsim without editing Vidur's files.

gsim's `vidur` kind writes the trace and the flags, then runs

    python3 vidur_shim.py --vidur <checkout> [--stubs <dir>] \
        [--hf-config <config.json> --model-name <org/name>] \
        [--total-memory-gb N] --result <result.json> [--predictions <dir>] \
        [--restarts <restarts.csv>] -- <vidur flags...>

What the shim adds to `python -m vidur.main`:
- puts gsim's stand-ins for wandb, plotly_express and ddsketch (standins/)
  on the path after the installed packages;
- registers a model config built from a Hugging Face config.json when Vidur does
  not know the model (Qwen3-0.6B), with the model's true head_dim: Vidur derives
  head_dim = embedding_dim / num_q_heads (64 for Qwen3-0.6B, whose real head_dim
  is 128), which halves KV-cache bytes and projection sizes. The classes that
  derive it are patched at run time to use the config's head_dim;
- optionally overrides the device's memory size (Vidur hard-codes it per SKU);
- seeds every estimator Vidur trains (its random forests) from what that
  estimator is trained on: the operation, a digest of its training rows and
  the search grid. Vidur builds them without random_state, so they draw from
  the process-wide random stream, and a forest loaded from Vidur's model cache
  shifts the stream for every forest trained after it: the same inputs gave
  different predictions depending on what the cache held;
- writes the outputs itself instead of from Vidur's atexit hook, so a failure
  to write is an exit code, and records what Vidur derived (num_blocks, max
  batch size, output folder, timings) in result.json for gsim;
- with --restarts FILE, records every preemption restart (the batch it
  happened before, the request, the tokens it had processed), which the
  chrome trace does not show and which gsim needs to rebuild token times;
- with --predictions DIR, exports the prediction tables Vidur's sklearn
  predictor looked every iteration up in (per operation, key -> ms), so
  another simulator can replay Vidur's exact per-operation times
  (format: docs/vidur.md, "Exported predictions").
"""

import argparse
import atexit
import gzip
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import field, make_dataclass
from typing import Any, Dict, Optional

PROGRESS = "##gsim progress"


def progress(done, total, msg):
    print(f"{PROGRESS} {done} {total} {msg}", flush=True)


def parse_args(argv):
    if "--" in argv:
        i = argv.index("--")
        own, vidur_args = argv[:i], argv[i + 1 :]
    else:
        own, vidur_args = argv, []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vidur", required=True, help="microsoft/vidur checkout")
    p.add_argument("--stubs", default="", help="folder of stand-in modules (wandb, ...)")
    p.add_argument("--hf-config", default="", help="Hugging Face config.json of the model")
    p.add_argument("--model-name", default="", help="name Vidur looks the model up by")
    p.add_argument("--total-memory-gb", type=float, default=0)
    p.add_argument("--result", required=True)
    p.add_argument("--predictions", default="", help="folder to export Vidur's prediction tables to")
    p.add_argument("--restarts", default="", help="CSV file to record Vidur's preemption restarts in")
    return p.parse_args(own), vidur_args


# Stand-ins for the packages Vidur imports but gsim never uses (wandb,
# plotly_express, ddsketch): appended after site-packages, so an installed
# package always wins and a stand-in only fills a gap.
STANDINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standins")


def import_vidur(vidur_dir, stubs):
    # A user's own stand-in folder (--stubs) goes first, then the checkout;
    # gsim's stand-ins last.
    for d in [vidur_dir] + ([stubs] if stubs else []):
        if d not in sys.path:
            sys.path.insert(0, d)
    if STANDINS not in sys.path:
        sys.path.append(STANDINS)
    os.environ.setdefault("WANDB_MODE", "disabled")
    try:
        import vidur.main  # noqa: F401
    except Exception as e:  # any import failure means "no usable Vidur here"
        sys.stderr.write(
            f"gsim: cannot import Vidur from {vidur_dir!r}: {type(e).__name__}: {e}\n"
            "gsim: Vidur needs a checkout of github.com/microsoft/vidur and its Python\n"
            "gsim: dependencies; on Debian: apt-get install python3-numpy python3-pandas\n"
            "gsim: python3-sklearn python3-yaml python3-matplotlib python3-seaborn\n"
            "gsim: python3-tqdm python3-plotly python3-fasteners (gsim's stand-ins in\n"
            "gsim: stages/vidur/standins cover wandb, plotly_express and ddsketch).\n"
            "gsim: Or use gsim's embedded simulator (uses: sim). See docs/vidur.md.\n"
        )
        sys.exit(3)


def model_fields_from_hf(hf: Dict[str, Any]) -> Dict[str, Any]:
    """Vidur BaseModelConfig fields (plus head_dim) from a HF Llama/Qwen config."""
    from vidur.types import ActivationType, NormType

    act = hf.get("hidden_act", "silu")
    if act not in ("silu", "gelu"):
        raise SystemExit(f"gsim: hidden_act {act!r} has no Vidur activation type")
    heads = hf["num_attention_heads"]
    return {
        "num_layers": hf["num_hidden_layers"],
        "num_q_heads": heads,
        "num_kv_heads": hf.get("num_key_value_heads", heads),
        "embedding_dim": hf["hidden_size"],
        "mlp_hidden_dim": hf["intermediate_size"],
        "max_position_embeddings": hf["max_position_embeddings"],
        "use_gated_mlp": True,
        "use_bias": False,
        "use_qkv_bias": bool(hf.get("attention_bias", False)),
        "activation": ActivationType.SILU if act == "silu" else ActivationType.GELU,
        "norm": NormType.RMS_NORM,
        "post_attn_norm": True,
        "vocab_size": hf["vocab_size"],
        "is_neox_style": True,
        "rope_theta": hf.get("rope_theta"),
        "rope_scaling": hf.get("rope_scaling"),
        "partial_rotary_factor": 1.0,
        "no_tensor_parallel": False,
        "head_dim": hf.get("head_dim") or hf["hidden_size"] // heads,
    }


_REGISTERED = []


def register_model(name: str, values: Dict[str, Any]):
    from vidur.config.model_config import BaseModelConfig
    from vidur.config.utils import get_all_subclasses

    for sub in get_all_subclasses(BaseModelConfig):
        if getattr(sub, "get_name", None) and sub.get_name() == name:
            return  # Vidur already knows it; keep Vidur's definition.
    types = {f: Any for f in values}
    types["head_dim"] = Optional[int]
    cls = make_dataclass(
        "GsimModelConfig_" + "".join(c if c.isalnum() else "_" for c in name),
        [(k, types[k], field(default=v)) for k, v in values.items()],
        bases=(BaseModelConfig,),
    )
    cls.get_name = staticmethod(lambda: name)
    # type.__subclasses__ holds weak references: keep the class alive.
    _REGISTERED.append(cls)


def head_dim_of(model_config) -> int:
    hd = getattr(model_config, "head_dim", None)
    return hd or model_config.embedding_dim // model_config.num_q_heads


def patch_head_dim():
    """Make every place that derives head_dim use the model's own."""
    from vidur.entities.replica import Replica
    from vidur.utils.mfu_calculator import MFUCalculator
    from vidur.utils.param_counter import ParamCounter

    Replica.attention_head_dim = property(lambda self: head_dim_of(self._model_config))

    pc_init = ParamCounter.__init__

    def param_counter_init(self, replica_config):
        pc_init(self, replica_config)
        self._attention_head_dim = head_dim_of(replica_config.model_config)

    ParamCounter.__init__ = param_counter_init

    mfu_init = MFUCalculator.__init__

    def mfu_calculator_init(self, replica_config):
        mfu_init(self, replica_config)
        self._head_dimension = head_dim_of(replica_config.model_config)

    MFUCalculator.__init__ = mfu_calculator_init


def patch_total_memory(gb: float):
    from vidur.config.config import ReplicaConfig

    post = ReplicaConfig.__post_init__

    def replica_post_init(self):
        post(self)
        self.device_config.total_memory_gb = gb

    ReplicaConfig.__post_init__ = replica_post_init


def estimator_seed(model_name, df, feature_cols, target_col, grid):
    """A 32-bit seed from what one estimator is trained on: the operation,
    its training rows (features and target, as Vidur reads them) and the
    search grid. Nothing about where files or caches are enters it, so the
    same profile gives the same forest on any machine, with any cache."""
    rows = df[list(feature_cols) + [target_col]].to_csv(index=False, float_format="%.17g")
    h = hashlib.sha256()
    for part in (model_name, ",".join(feature_cols), target_col, json.dumps(grid, sort_keys=True, default=str), rows):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return int(h.hexdigest()[:8], 16)


def seed_estimators():
    """Give every estimator Vidur trains a random_state of its own
    (estimator_seed), so training never reads the process-wide stream."""
    from vidur.execution_time_predictor.sklearn_execution_time_predictor import (
        SklearnExecutionTimePredictor,
    )

    train = SklearnExecutionTimePredictor._train_model

    def _train_model(self, model_name, df, feature_cols, target_col):
        seed = estimator_seed(model_name, df, feature_cols, target_col, self._get_grid_search_params())
        unseeded = self._get_estimator

        def seeded():
            est = unseeded()
            keys = [k for k in est.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")]
            if keys:
                est.set_params(**{k: seed for k in keys})
            return est

        # An instance attribute shadows the class's method for this call only.
        self._get_estimator = seeded
        try:
            return train(self, model_name, df, feature_cols, target_col)
        finally:
            del self._get_estimator

    SklearnExecutionTimePredictor._train_model = _train_model


def record_restarts():
    """Record each Request.restart() as (the id of the batch being formed,
    the request, the tokens it had processed): Vidur restarts requests only
    while it forms a batch, and batch ids grow with time."""
    from vidur.entities.batch import Batch
    from vidur.entities.request import Request

    rows = []
    restart = Request.restart

    def recorded(self):
        # Token counts are floats when the trace came through pandas.
        rows.append((Batch._id + 1, self.id, int(self.num_processed_tokens)))
        restart(self)

    Request.restart = recorded
    return rows


def write_restarts(path, rows):
    with open(path, "w", newline="\n") as f:
        f.write("batch_id,request_id,num_processed_tokens\n")
        for b, r, n in rows:
            f.write(f"{b},{r},{n}\n")


def report_completions(sim, total):
    """Report simulation progress as requests complete (about 50 lines a run)."""
    store = sim._metric_store
    end = store._on_request_end
    step = max(1, total // 50)
    done = [0]

    def on_request_end(t, request):
        end(t, request)
        done[0] += 1
        if done[0] % step == 0 or done[0] == total:
            progress(1 + done[0] / total, 3, f"simulated {done[0]}/{total} requests")

    store._on_request_end = on_request_end


# The key columns of each table Vidur's sklearn predictor precomputes, in the
# order of its dict keys (sklearn_execution_time_predictor.py).
PREDICTION_KEYS = {
    "attn_prefill": ["kv_cache_size", "prefill_chunk_size_squared"],
    "attn_decode": ["batch_size", "kv_cache_size"],
}
for _op in ("schedule", "sampler_e2e", "prepare_inputs_e2e", "process_model_outputs", "ray_comm_time"):
    PREDICTION_KEYS[_op] = ["batch_size"]


def export_predictions(predictor, out_dir):
    """Write each of predictor._predictions (op -> {key tuple: ms}) as
    out_dir/<op>.csv.gz (gzip without a timestamp, so reruns are
    identical), with runs of equal predictions merged: keys sorted, a row
    per run of consecutive keys (same leading keys) whose predictions are
    equal, its last key column as <name>_min,<name>_max. A forest is
    piecewise constant, so the ~315k keys fold into about 12k rows.
    index.json lists the tables, their key grids and the settings Vidur
    combines them with."""
    os.makedirs(out_dir, exist_ok=True)
    index = {"tables": {}}
    for op in sorted(predictor._predictions):
        table = predictor._predictions[op]
        cols = PREDICTION_KEYS.get(op, ["num_tokens"])
        keys = sorted(table)
        rows = []
        for k in keys:
            k = tuple(int(x) for x in k)
            v = float(table[k])
            last = rows[-1] if rows else None
            if last and last[0] == k[:-1] and last[3] == v:
                last[2] = k[-1]
            else:
                rows.append([k[:-1], k[-1], k[-1], v])
        name = op + ".csv.gz"
        with open(os.path.join(out_dir, name), "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0
        ) as gz, io.TextIOWrapper(gz, encoding="ascii", newline="\n") as f:
            f.write(",".join(cols[:-1] + [cols[-1] + "_min", cols[-1] + "_max", "time_ms"]) + "\n")
            for lead, lo, hi, v in rows:
                f.write(",".join([str(x) for x in lead] + [str(lo), str(hi), repr(v)]) + "\n")
        grid = []
        for i, c in enumerate(cols):
            vals = sorted({int(k[i]) for k in keys})
            grid.append({"name": c, "min": vals[0], "max": vals[-1], "count": len(vals)})
        index["tables"][op] = {"file": name, "keys": grid, "num_keys": len(keys), "rows": len(rows)}
    cfg = predictor._config
    index["settings"] = {
        "kv_cache_prediction_granularity": cfg.kv_cache_prediction_granularity,
        "attention_prefill_batching_overhead_fraction": predictor._attention_prefill_batching_overhead_fraction,
        "attention_decode_batching_overhead_fraction": predictor._attention_decode_batching_overhead_fraction,
        "skip_cpu_overhead_modeling": cfg.skip_cpu_overhead_modeling,
        "num_layers_per_pipeline_stage": predictor._num_layers_per_pipeline_stage,
        "post_attn_norm": bool(predictor._model_config.post_attn_norm),
    }
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")


def main(argv):
    args, vidur_args = parse_args(argv)
    import_vidur(os.path.abspath(args.vidur), os.path.abspath(args.stubs) if args.stubs else "")
    if args.hf_config:
        if not args.model_name:
            raise SystemExit("gsim: --hf-config needs --model-name")
        with open(args.hf_config) as f:
            register_model(args.model_name, model_fields_from_hf(json.load(f)))
    patch_head_dim()
    if args.total_memory_gb > 0:
        patch_total_memory(args.total_memory_gb)
    seed_estimators()
    restarts = record_restarts()

    from vidur.config import SimulationConfig
    from vidur.simulator import Simulator
    from vidur.utils.random import set_seeds

    sys.argv = ["vidur.main"] + vidur_args
    t0 = time.monotonic()
    progress(0, 3, "configuring Vidur")
    config = SimulationConfig.create_from_cli_args()
    set_seeds(config.seed)
    progress(0, 3, "training or loading the execution-time predictor")
    sim = Simulator(config)
    # Vidur writes its outputs from an atexit hook, where errors do not change
    # the exit code; write them here instead and drop the hook.
    atexit.unregister(sim._write_output)
    t1 = time.monotonic()
    total = len(sim._event_queue)  # one arrival event per request
    progress(1, 3, f"simulating {total} requests")
    report_completions(sim, total)
    sim.run()
    t2 = time.monotonic()
    progress(2, 3, "writing Vidur's outputs")
    sim._write_output()
    if args.restarts:
        write_restarts(args.restarts, restarts)
    rsched = sim.scheduler.get_replica_scheduler(0)
    if args.predictions and hasattr(rsched._replica_stage_schedulers[0]._execution_time_predictor, "_predictions"):
        export_predictions(rsched._replica_stage_schedulers[0]._execution_time_predictor, args.predictions)
    t3 = time.monotonic()

    replica_config = config.cluster_config.replica_config
    result = {
        "output_dir": os.path.abspath(config.metrics_config.output_dir),
        "model_name": replica_config.model_name,
        "head_dim": head_dim_of(replica_config.model_config),
        "derived_head_dim": replica_config.model_config.embedding_dim
        // replica_config.model_config.num_q_heads,
        "total_memory_gb": replica_config.device_config.total_memory_gb,
        "num_blocks": rsched._config.num_blocks,
        "max_batch_size": rsched._max_batch_size,
        "block_size": rsched._config.block_size,
        "seconds": {
            "predictor": round(t1 - t0, 3),
            "simulate": round(t2 - t1, 3),
            "write": round(t3 - t2, 3),
        },
        "python": sys.version.split()[0],
    }
    with open(args.result, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    progress(3, 3, "done")


if __name__ == "__main__":
    main(sys.argv[1:])
