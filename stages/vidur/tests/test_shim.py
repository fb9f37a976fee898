"""Tests of the Vidur shim. The head_dim tests need Vidur: GSIM_VIDUR=<checkout>
(and GSIM_VIDUR_STUBS on Debian); without it they are skipped."""

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


def vidur_importable():
    path = os.environ.get("GSIM_VIDUR")
    if not path:
        return "GSIM_VIDUR not set: point it at a microsoft/vidur checkout"
    for d in [path, os.environ.get("GSIM_VIDUR_STUBS", "")]:
        if d and d not in sys.path:
            sys.path.insert(0, d)
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
