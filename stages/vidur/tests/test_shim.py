"""Tests of the Vidur shim. The head_dim tests need Vidur: GSIM_VIDUR=<checkout>
(gsim's stand-ins fill in wandb, plotly_express and ddsketch); without it they
are skipped."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import vidur_shim  # noqa: E402

CARD = os.path.join(HERE, "..", "..", "models", "Qwen3-0.6B", "config.json")


class ArgsTest(unittest.TestCase):
    def test_split_at_double_dash(self):
        own, rest = vidur_shim.parse_args(
            ["--vidur", "/v", "--result", "r.json", "--", "--seed", "3", "--vidur", "x"]
        )
        self.assertEqual(own.vidur, "/v")
        self.assertEqual(own.result, "r.json")
        self.assertEqual(rest, ["--seed", "3", "--vidur", "x"])


class ExportPredictionsTest(unittest.TestCase):
    """export_predictions on a stand-in of Vidur's predictor: runs of equal
    predictions fold into one row, the export is byte-stable, and index.json
    holds the grids and settings."""

    def predictor(self):
        from types import SimpleNamespace as NS

        return NS(
            _predictions={
                "add": {(1,): 0.5, (2,): 0.5, (3,): 0.25, (4,): 0.5},
                "attn_decode": {(1, 0): 1.0, (1, 64): 1.0, (2, 0): 2.0, (2, 64): 3.0},
            },
            _config=NS(kv_cache_prediction_granularity=64, skip_cpu_overhead_modeling=True),
            _attention_prefill_batching_overhead_fraction=0.1,
            _attention_decode_batching_overhead_fraction=0.1,
            _num_layers_per_pipeline_stage=28,
            _model_config=NS(post_attn_norm=True),
        )

    def test_export(self):
        import gzip
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            vidur_shim.export_predictions(self.predictor(), d)
            with gzip.open(os.path.join(d, "add.csv.gz"), "rt") as f:
                self.assertEqual(
                    f.read(), "num_tokens_min,num_tokens_max,time_ms\n1,2,0.5\n3,3,0.25\n4,4,0.5\n"
                )
            with gzip.open(os.path.join(d, "attn_decode.csv.gz"), "rt") as f:
                self.assertEqual(
                    f.read(),
                    "batch_size,kv_cache_size_min,kv_cache_size_max,time_ms\n1,0,64,1.0\n2,0,0,2.0\n2,64,64,3.0\n",
                )
            with open(os.path.join(d, "index.json")) as f:
                idx = json.load(f)
            self.assertEqual(idx["tables"]["attn_decode"]["num_keys"], 4)
            self.assertEqual(idx["tables"]["attn_decode"]["keys"][1], {"name": "kv_cache_size", "min": 0, "max": 64, "count": 2})
            self.assertEqual(idx["settings"]["num_layers_per_pipeline_stage"], 28)
            with open(os.path.join(d, "add.csv.gz"), "rb") as f:
                first = f.read()
            vidur_shim.export_predictions(self.predictor(), d)
            with open(os.path.join(d, "add.csv.gz"), "rb") as f:
                self.assertEqual(f.read(), first, "a re-export is not byte-identical")


class EstimatorSeedTest(unittest.TestCase):
    """estimator_seed depends on what an estimator is trained on and on
    nothing else: the same rows give the same seed in any row-object, a
    changed value, operation or grid gives another."""

    def setUp(self):
        try:
            import pandas  # noqa: F401
        except ImportError:
            self.skipTest("pandas is not installed (Debian: python3-pandas)")

    def frame(self, values):
        import pandas as pd

        return pd.DataFrame({"num_tokens": [1, 2, 3], "time_stats.add.median": values, "unused": [7, 8, 9]})

    def test_seed(self):
        grid = {"n_estimators": [250], "max_depth": [16], "min_samples_split": [2]}
        seed = vidur_shim.estimator_seed
        a = seed("add", self.frame([0.1, 0.2, 0.3]), ["num_tokens"], "time_stats.add.median", grid)
        self.assertIsInstance(a, int)
        self.assertTrue(0 <= a < 2**32)
        df = self.frame([0.1, 0.2, 0.3])
        df["unused"] = [0, 0, 0]  # columns the estimator does not read do not count
        self.assertEqual(seed("add", df, ["num_tokens"], "time_stats.add.median", grid), a)
        self.assertNotEqual(seed("add", self.frame([0.1, 0.2, 0.30000001]), ["num_tokens"], "time_stats.add.median", grid), a)
        self.assertNotEqual(seed("mlp_act", self.frame([0.1, 0.2, 0.3]), ["num_tokens"], "time_stats.add.median", grid), a)
        self.assertNotEqual(seed("add", self.frame([0.1, 0.2, 0.3]), ["num_tokens"], "time_stats.add.median", dict(grid, max_depth=[8])), a)


class RestartLogTest(unittest.TestCase):
    def test_write(self):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "restarts.csv")
            vidur_shim.write_restarts(p, [(7, 3, 406), (9, 1, 12)])
            with open(p) as f:
                self.assertEqual(f.read(), "batch_id,request_id,num_processed_tokens\n7,3,406\n9,1,12\n")


class StandInsTest(unittest.TestCase):
    """The stand-ins for the packages Vidur imports and gsim never uses."""

    def setUp(self):
        sys.path.insert(0, vidur_shim.STANDINS)
        self.addCleanup(sys.path.remove, vidur_shim.STANDINS)

    def test_ddsketch_quantiles(self):
        import importlib
        import random

        mod = importlib.import_module("ddsketch.ddsketch")
        s = mod.DDSketch(relative_accuracy=0.001)
        rng = random.Random(1)
        vals = [rng.lognormvariate(0, 1) for _ in range(5000)] + [0.0, -2.0]
        for v in vals:
            s.add(v)
        vals.sort()
        self.assertEqual(s.count, len(vals))
        self.assertAlmostEqual(s.sum, sum(vals))
        self.assertEqual((s._min, s._max), (vals[0], vals[-1]))
        for q in (0, 0.01, 0.25, 0.5, 0.9, 0.99, 1):
            want = vals[int(q * (len(vals) - 1))]
            got = s.get_quantile_value(q)
            self.assertLessEqual(abs(got - want), 0.001 * abs(want) + 1e-12, f"q={q}: {got} vs {want}")
        self.assertIsNone(mod.DDSketch().get_quantile_value(0.5))

    def test_wandb_is_inert(self):
        import importlib

        wandb = importlib.import_module("wandb")
        if not getattr(wandb, "__file__", "").startswith(vidur_shim.STANDINS):
            self.skipTest("the real wandb is installed")
        self.assertIsNone(wandb.run)
        wandb.log({"x": 1}, step=0)
        self.assertIsNone(wandb.plot.line(wandb.Table(dataframe=None), "a", "b", title="t"))


def vidur_importable():
    path = os.environ.get("GSIM_VIDUR")
    if not path:
        return "GSIM_VIDUR not set: point it at a microsoft/vidur checkout"
    for d in [path, os.environ.get("GSIM_VIDUR_STUBS", "")]:
        if d and d not in sys.path:
            sys.path.insert(0, d)
    if vidur_shim.STANDINS not in sys.path:
        sys.path.append(vidur_shim.STANDINS)
    try:
        import vidur.main  # noqa: F401
    except Exception as e:  # a missing dependency of Vidur
        return f"cannot import Vidur with {sys.executable}: {e}"
    return ""


class HeadDimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = vidur_importable()
        if why:
            raise unittest.SkipTest(why)
        with open(CARD) as f:
            vidur_shim.register_model("Qwen/Qwen3-0.6B", vidur_shim.model_fields_from_hf(json.load(f)))
        vidur_shim.patch_head_dim()

    def model(self):
        from vidur.config.model_config import BaseModelConfig

        return BaseModelConfig.create_from_name("Qwen/Qwen3-0.6B")

    def test_registered_with_true_head_dim(self):
        m = self.model()
        self.assertEqual((m.num_layers, m.num_q_heads, m.num_kv_heads), (28, 16, 8))
        self.assertEqual((m.embedding_dim, m.mlp_hidden_dim, m.vocab_size), (1024, 3072, 151936))
        self.assertEqual(m.head_dim, 128)
        self.assertEqual(m.embedding_dim // m.num_q_heads, 64)  # what Vidur would derive

    def test_patched_users_of_head_dim(self):
        from types import SimpleNamespace

        from vidur.entities.replica import Replica
        from vidur.utils.param_counter import ParamCounter

        m = self.model()
        rc = SimpleNamespace(model_config=m, tensor_parallel_size=1, num_pipeline_stages=1)
        pc = ParamCounter(rc)
        # q: 1024x(16*128), k and v: 1024x(8*128) each, o: (16*128)x1024, MLP 3x1024x3072
        want = 1024 * 128 * (16 + 2 * 8) + 1024 * 128 * 16 + 3 * 1024 * 3072
        self.assertEqual(pc.get_num_parameters_per_layer(), want)
        replica = Replica.__new__(Replica)
        replica._model_config = m
        self.assertEqual(replica.attention_head_dim, 128)


if __name__ == "__main__":
    unittest.main()
