"""Tests of the runner's pure parts (no torch): python3 -m unittest discover -s stages/profile/tests"""

import csv
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import profgrid as pg  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# The header of Vidur's own data/profiling/compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv.
VIDUR_MLP_HEADER = (
    "time_stats.emb.min,time_stats.emb.max,time_stats.emb.mean,time_stats.emb.median,time_stats.emb.std,"
    "time_stats.input_layernorm.min,time_stats.input_layernorm.max,time_stats.input_layernorm.mean,"
    "time_stats.input_layernorm.median,time_stats.input_layernorm.std,time_stats.attn_pre_proj.min,"
    "time_stats.attn_pre_proj.max,time_stats.attn_pre_proj.mean,time_stats.attn_pre_proj.median,"
    "time_stats.attn_pre_proj.std,time_stats.attn_rope.min,time_stats.attn_rope.max,time_stats.attn_rope.mean,"
    "time_stats.attn_rope.median,time_stats.attn_rope.std,time_stats.attn_post_proj.min,"
    "time_stats.attn_post_proj.max,time_stats.attn_post_proj.mean,time_stats.attn_post_proj.median,"
    "time_stats.attn_post_proj.std,time_stats.post_attention_layernorm.min,"
    "time_stats.post_attention_layernorm.max,time_stats.post_attention_layernorm.mean,"
    "time_stats.post_attention_layernorm.median,time_stats.post_attention_layernorm.std,"
    "time_stats.mlp_up_proj.min,time_stats.mlp_up_proj.max,time_stats.mlp_up_proj.mean,"
    "time_stats.mlp_up_proj.median,time_stats.mlp_up_proj.std,time_stats.mlp_act.min,time_stats.mlp_act.max,"
    "time_stats.mlp_act.mean,time_stats.mlp_act.median,time_stats.mlp_act.std,time_stats.mlp_down_proj.min,"
    "time_stats.mlp_down_proj.max,time_stats.mlp_down_proj.mean,time_stats.mlp_down_proj.median,"
    "time_stats.mlp_down_proj.std,time_stats.add.min,time_stats.add.max,time_stats.add.mean,"
    "time_stats.add.median,time_stats.add.std,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,"
    "use_gated_mlp,num_tokens,num_tensor_parallel_workers"
)


class SharedGPUIdentityTest(unittest.TestCase):
    def test_runner_uses_the_shared_code(self):
        # run.py calls pg.device_identity and pg.smi_gpus; they are
        # stages/common/gpuident.py's, not a copy.
        import gpuident
        self.assertIs(pg.device_identity, gpuident.device_identity)
        self.assertIs(pg.smi_gpus, gpuident.smi_gpus)


class GridTest(unittest.TestCase):
    def test_num_tokens_is_vidurs_space(self):
        g = pg.num_tokens_grid(4096)
        self.assertEqual(g[:5], [1, 2, 4, 8, 16])
        self.assertEqual(g[-1], 4096)
        self.assertEqual(g, sorted(set(g)))
        self.assertIn(1016, g)
        self.assertIn(1040, g)  # step 16 above 1024
        self.assertNotIn(1032, g)
        self.assertIn(2080, g)  # step 32 above 2048
        self.assertNotIn(2064, g)
        self.assertEqual(len(g), 3 + 127 + 65 + 64)

    def test_caps(self):
        self.assertEqual(pg.num_tokens_grid(100)[-1], 96)
        self.assertTrue(all(b <= 16 for b in pg.decode_batch_grid(16)))
        self.assertTrue(all(k <= 512 for k in pg.kv_grid(512)))

    def test_attention_inputs_follow_vidurs_rules(self):
        p = pg.resolve_params({})
        ins = pg.attention_inputs(p)
        self.assertTrue(ins)
        seen = set()
        for is_prefill, b, chunk, kv in ins:
            self.assertNotIn((is_prefill, b, chunk, kv), seen)
            seen.add((is_prefill, b, chunk, kv))
            if is_prefill:
                self.assertEqual(b, 1)
                self.assertGreater(chunk, 0)
                self.assertLessEqual(chunk + kv, p["max_seq_len"])
                self.assertEqual(kv % chunk, 0)
            else:
                self.assertEqual(chunk, 0)
                self.assertGreater(kv, 0)
                self.assertLessEqual(kv, p["max_seq_len"])
                self.assertLessEqual(b * (kv + 1), p["max_kv_tokens"])
        self.assertIn((False, 1, 0, 4096), seen)
        self.assertIn((False, 128, 0, 1792), seen)
        self.assertNotIn((False, 128, 0, 2048), seen)  # over the cache cap
        self.assertIn((True, 1, 4096, 0), seen)

    def test_packed_grid(self):
        p = pg.resolve_params({})
        for q, k in pg.packed_grid(p):
            self.assertLessEqual(q, k)
            self.assertLessEqual(k, p["max_kv_tokens"])

    def test_quick_is_small(self):
        p = pg.resolve_params({"quick": True})
        self.assertLess(len(pg.attention_inputs(p)), 30)
        self.assertLess(len(pg.num_tokens_grid(4096, True)), 10)


class ParamsTest(unittest.TestCase):
    def test_unknown_param(self):
        with self.assertRaisesRegex(pg.ParamError, "max_tokns"):
            pg.resolve_params({"max_tokns": 4})

    def test_bad_values(self):
        for k, v in [("max_tokens", 0), ("max_tokens", "4"), ("mlp_repeats", True), ("warmup", -1),
                     ("model", "Qwen3")]:
            with self.assertRaises(pg.ParamError, msg=k):
                pg.resolve_params({k: v})

    def test_gsim_params_pass(self):
        p = pg.resolve_params({"source": "gpu", "hardware": "h100", "max_batch_size": 64})
        self.assertEqual(p["max_batch_size"], 64)
        self.assertNotIn("source", p)


class StatsTest(unittest.TestCase):
    def test_stats(self):
        s = pg.stats([1.0, 2.0, 3.0, 10.0])
        self.assertEqual(s["min"], 1.0)
        self.assertEqual(s["max"], 10.0)
        self.assertEqual(s["median"], 2.5)
        self.assertEqual(s["mean"], 4.0)
        self.assertAlmostEqual(s["std"], (((9 + 4 + 1 + 36) / 4) ** 0.5))

    def test_empty(self):
        with self.assertRaises(ValueError):
            pg.stats([])

    def test_fmt(self):
        self.assertEqual(pg.fmt(0.1234567891), "0.123457")
        self.assertEqual(pg.fmt(2.0), "2")
        self.assertEqual(pg.fmt(0.0000001), "0")
        self.assertEqual(pg.fmt(True), "True")
        self.assertEqual(pg.fmt(16), "16")
        with self.assertRaises(ValueError):
            pg.fmt(float("nan"))


class CSVTest(unittest.TestCase):
    def shape(self):
        with open(os.path.join(REPO, "stages", "models", "Qwen3-0.6B", "config.json")) as f:
            return pg.model_shape(json.load(f))

    def test_model_shape_uses_true_head_dim(self):
        s = self.shape()
        self.assertEqual((s["n_head"], s["n_kv_head"], s["n_embd"], s["head_dim"]), (16, 8, 1024, 128))
        self.assertEqual((s["n_expanded_embd"], s["vocab_size"], s["num_layers"]), (3072, 151936, 28))

    def test_mlp_header_is_vidurs(self):
        self.assertEqual(",".join(pg.mlp_header()), VIDUR_MLP_HEADER)

    def test_write_mlp_and_attention(self):
        st = pg.stats([0.1, 0.2, 0.3])
        with tempfile.TemporaryDirectory() as d:
            mp = os.path.join(d, "mlp.csv")
            pg.write_mlp_csv(mp, [{"num_tokens": 8, "time_stats": {op: st for op in pg.MLP_OPS}},
                                  {"num_tokens": 1, "time_stats": {op: st for op in pg.MLP_OPS}}], self.shape())
            with open(mp) as f:
                rows = list(csv.DictReader(f))
            self.assertEqual([r["num_tokens"] for r in rows], ["1", "8"])
            self.assertEqual(rows[0]["use_gated_mlp"], "True")
            self.assertEqual(rows[0]["time_stats.add.median"], "0.2")
            ap = os.path.join(d, "attention.csv")
            ts = {op: st for op in pg.ATTENTION_OPS if op != "attn_prefill"}
            pg.write_attention_csv(ap, [{"is_prefill": False, "batch_size": 4, "prefill_chunk_size": 0,
                                         "kv_cache_size": 64, "time_stats": ts}], self.shape(), 256, 4096)
            with open(ap) as f:
                head = f.readline().strip().split(",")
            with open(ap) as f:
                rows = list(csv.DictReader(f))
            self.assertEqual(head, pg.attention_header())
            self.assertEqual(rows[0]["time_stats.attn_prefill.median"], "")
            self.assertEqual(rows[0]["time_stats.attn_decode.median"], "0.2")
            self.assertEqual(rows[0]["is_prefill"], "False")
            self.assertEqual(rows[0]["n_q_head"], "16")
            self.assertEqual(rows[0]["attention_backend"], "paged|sdpa")

    def test_cpu_and_extra(self):
        st = pg.stats([1.0, 3.0])
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "cpu.csv")
            pg.write_cpu_csv(p, [{"name": "engine_decode_step_wall", "batch_size": 1, "samples": 2, "stats": st}])
            with open(p) as f:
                rows = list(csv.DictReader(f))
            self.assertEqual(rows[0]["median_ms"], "2")
            p = os.path.join(d, "extra.csv")
            pg.write_extra_csv(p, [{"op": "lm_head", "num_tokens": 4, "kv_tokens": 0, "samples": 2, "stats": st}])
            with open(p) as f:
                rows = list(csv.DictReader(f))
            self.assertEqual(list(rows[0].keys()), list(pg.EXTRA_OPS_COLUMNS))


class DeviceTest(unittest.TestCase):
    def test_names(self):
        self.assertEqual(pg.device_name("NVIDIA H100 80GB HBM3"), "h100")
        self.assertEqual(pg.device_name("NVIDIA H200"), "h200")
        self.assertEqual(pg.device_name("NVIDIA A100-SXM4-80GB"), "a100")
        self.assertIsNone(pg.device_name("NVIDIA L4"))

    def test_compute_dir(self):
        self.assertEqual(pg.compute_dir("/o", "h100", "Qwen/Qwen3-0.6B"),
                         os.path.join("/o", "profiling", "compute", "h100", "Qwen", "Qwen3-0.6B"))

    def test_progress_line(self):
        self.assertEqual(pg.progress_line(3, 10, "mlp"), "##gsim progress 3 10 mlp")


if __name__ == "__main__":
    unittest.main()


class RunArgsTest(unittest.TestCase):
    """run.py's argument handling imports no torch."""

    def setUp(self):
        import importlib
        self.run = importlib.import_module("run")

    def test_spec(self):
        with tempfile.TemporaryDirectory() as d:
            spec = os.path.join(d, "spec.json")
            with open(spec, "w") as f:
                json.dump({"params": {"source": "gpu", "hardware": "h100", "max_batch_size": 32},
                           "out_dir": os.path.join(d, "out"), "base_dir": d}, f)
            p, out, base = self.run.parse_args(["--spec", spec, "--param", "mlp_repeats=5"])
            self.assertEqual(out, os.path.join(d, "out"))
            self.assertEqual(base, d)
            self.assertEqual((p["max_batch_size"], p["mlp_repeats"], p["hardware"]), (32, 5, "h100"))

    def test_out_and_quick(self):
        p, out, _ = self.run.parse_args(["--out", "/tmp/x", "--quick", "--param", "cpu_batch_sizes=[1,4]"])
        self.assertEqual(out, "/tmp/x")
        self.assertTrue(p["quick"])
        self.assertEqual(p["cpu_batch_sizes"], [1, 4])

    def test_bad_param(self):
        with self.assertRaises(pg.ParamError):
            self.run.parse_args(["--out", "/tmp/x", "--param", "max_tokens=0"])
