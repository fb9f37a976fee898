"""The step recorder (engine.StepRecorder) against a stand-in of transformers'
continuous-batching objects, shaped like transformers 5.17's (the batch
processor, its scheduler, IO object with CUDA-graph buffer, model runner).
torch and transformers are replaced by stub modules, so this runs anywhere;
the GPU run is the real test of the same code."""

import os
import sys
import types
import unittest
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.dirname(HERE)
sys.path.insert(0, RUNNER)

import bench_core as core  # noqa: E402


def _stub_modules():
    """Installs just enough of torch and transformers for engine.py to import."""
    saved = {k: sys.modules.get(k) for k in (
        "torch", "transformers", "transformers.generation", "transformers.generation.configuration_utils",
        "transformers.generation.continuous_batching", "transformers.generation.continuous_batching.requests")}
    torch = types.ModuleType("torch")
    torch.bfloat16, torch.float16, torch.float32 = "bf16", "f16", "f32"
    tr = types.ModuleType("transformers")
    tr.AutoConfig = tr.AutoModelForCausalLM = tr.GenerationConfig = object
    tr.__version__ = "stub"
    gen = types.ModuleType("transformers.generation")
    cu = types.ModuleType("transformers.generation.configuration_utils")
    cu.ContinuousBatchingConfig = object
    cb = types.ModuleType("transformers.generation.continuous_batching")
    rq = types.ModuleType("transformers.generation.continuous_batching.requests")

    class RequestStatus:
        PREFILLING, DECODING = "prefilling", "decoding"
    rq.RequestStatus = RequestStatus
    for name, mod in (("torch", torch), ("transformers", tr), ("transformers.generation", gen),
                      ("transformers.generation.configuration_utils", cu),
                      ("transformers.generation.continuous_batching", cb),
                      ("transformers.generation.continuous_batching.requests", rq)):
        sys.modules[name] = mod
    return saved, RequestStatus


def _restore(saved):
    for k, v in saved.items():
        if v is None:
            sys.modules.pop(k, None)
        else:
            sys.modules[k] = v
    sys.modules.pop("engine", None)


class State:
    def __init__(self, rid, prompt, status):
        self.request_id, self.position_offset, self.status, self.prompt = rid, 0, status, prompt


class Future:
    def __init__(self, state, q, new):
        self.state, self.query_length, self.has_new_token = state, q, new


class Graphs:
    def __init__(self, n):
        self.max_size, self._storage = n, OrderedDict()


class IO:
    """get_graph / set_graph / _get_graph_key as in input_outputs.py."""

    def __init__(self):
        self.graphs = Graphs(2)
        self.num_q_tokens = self.max_kv_read = self.max_seqlen_q = 0
        self.max_seqlen_k = {"full_attention": 0}

    def _get_graph_key(self):
        return (self.num_q_tokens, self.max_kv_read, *self.max_seqlen_k.values())

    def get_graph(self):
        g = self.graphs._storage.get(self._get_graph_key())
        if g is not None:
            self.graphs._storage.move_to_end(self._get_graph_key())
        return g

    def set_graph(self, g):
        while len(self.graphs._storage) >= self.graphs.max_size:
            self.graphs._storage.popitem(last=False)
        self.graphs._storage[self._get_graph_key()] = g

    def retrieve_device_outputs(self):
        pass


class Runner:
    def __init__(self, io):
        self.io = io

    def compute_batch(self, model, batch):
        if self.io.get_graph() is None:
            self.io.set_graph(object())


class Cache:
    def get_num_free_blocks(self):
        return 100


class Scheduler:
    def __init__(self, status):
        self.S = status
        self.active_requests, self.waiting_requests = {}, {}

    def schedule_batch(self, token_budget, cache_budget):
        out, q, kv = [], 0, 0
        for st in list(self.waiting_requests.values()):
            del self.waiting_requests[st.request_id]
            self.active_requests[st.request_id] = st
        for st in self.active_requests.values():
            n = st.prompt if st.status == self.S.PREFILLING else 1
            out.append(Future(st, n, True))
            q, kv = q + n, kv + st.position_offset
        return out, False, q, kv


class BP:
    def __init__(self, status):
        self.scheduler, self.inputs_and_outputs, self.cache = Scheduler(status), IO(), Cache()
        self.model_runner = Runner(self.inputs_and_outputs)

    def prepare_next_batch(self):
        fs, _, q, kv = self.scheduler.schedule_batch(8192, 1 << 20)
        if not fs:
            return False
        io = self.inputs_and_outputs
        io.num_q_tokens, io.max_kv_read = -(-q // 64) * 64, max(16384, -(-kv // 16384) * 16384)
        io.max_seqlen_k = {"full_attention": max(f.state.position_offset + f.query_length for f in fs)}
        for f in fs:
            f.state.position_offset += f.query_length
        self._fs = fs
        return True

    def generation_step(self):
        io = self.inputs_and_outputs
        io.max_seqlen_k = {k: max(1024, 1 << (v - 1).bit_length()) for k, v in io.max_seqlen_k.items()}
        self.model_runner.compute_batch(None, None)
        io.retrieve_device_outputs()

    def update_batch(self):
        for f in self._fs:
            f.state.status = self.scheduler.S.DECODING


class RecorderTest(unittest.TestCase):
    def setUp(self):
        self.saved, self.S = _stub_modules()
        import engine
        self.engine = engine

    def tearDown(self):
        _restore(self.saved)

    def test_records_graph_keys_captures_and_times(self):
        bp = BP(self.S)
        rec = self.engine.StepRecorder(bp)
        self.assertEqual(rec.hooks, {"compute_batch": "ok", "graphs": "ok", "retrieve_device_outputs": "ok"})
        rec.recording = True
        bp.scheduler.waiting_requests["a"] = State("a", 100, self.S.PREFILLING)
        for _ in range(3):
            self.assertTrue(bp.prepare_next_batch())
            bp.generation_step()
            bp.update_batch()
        self.assertEqual(len(rec.steps), 3)
        self.assertEqual(len(rec.details), 3)
        rows = core.detail_rows(rec.details, rec.details[0]["start_ns"])
        self.assertEqual(rows[0]["start_ns"], 0)
        self.assertEqual([r["graph_key"] for r in rows], ["128x16384x1024", "64x16384x1024", "64x16384x1024"])
        self.assertEqual([r["graph_hit"] for r in rows], [0, 0, 1])
        self.assertEqual([r["graph_captured"] for r in rows], [1, 1, 0])
        self.assertEqual([r["q_tokens"] for r in rows], [100, 1, 1])
        self.assertEqual([r["kv_read"] for r in rows], [0, 100, 101])
        self.assertEqual([r["max_seqlen_k"] for r in rows], [100, 101, 102])
        self.assertEqual([r["seqlen_k_padded"] for r in rows], [1024, 1024, 1024])
        for r in rows:
            ts = [r[c] for c in ("start_ns", "sched_end_ns", "prep_end_ns", "compute_start_ns", "compute_end_ns",
                                 "sync_end_ns", "update_start_ns", "end_ns")]
            self.assertTrue(all(t >= 0 for t in ts), r)
            self.assertEqual(ts, sorted(ts), r)
            self.assertEqual(r["waiting"] + r["active"], 1)
            self.assertEqual(r["free_blocks"], 100)
        self.assertEqual(rec.graph_keys(), ["128x16384x1024", "64x16384x1024"])
        self.assertEqual(rec.graph_capacity(), 2)
        rec.close()

    def test_missing_hooks_leave_columns_unknown(self):
        bp = BP(self.S)
        del bp.model_runner
        bp.inputs_and_outputs = types.SimpleNamespace(num_q_tokens=64, max_kv_read=16384, max_seqlen_k={"f": 3})
        bp.generation_step = lambda: None
        rec = self.engine.StepRecorder(bp)
        self.assertNotEqual(rec.hooks["graphs"], "ok")
        rec.recording = True
        bp.scheduler.waiting_requests["a"] = State("a", 3, self.S.PREFILLING)
        bp.prepare_next_batch()
        bp.update_batch()
        row = core.detail_rows(rec.details, 0)[0]
        self.assertEqual((row["graph_hit"], row["compute_start_ns"], row["graph_key"]), (-1, -1, ""))
        self.assertEqual(row["q_padded"], 64)
        self.assertIsNone(rec.graph_keys())
        rec.close()

    def test_gc_pauses_inside_a_step_are_counted(self):
        import gc
        bp = BP(self.S)
        rec = self.engine.StepRecorder(bp)
        rec.recording = True
        bp.scheduler.waiting_requests["a"] = State("a", 3, self.S.PREFILLING)
        bp.prepare_next_batch()
        gc.collect()
        bp.generation_step()
        bp.update_batch()
        rec.close()
        row = core.detail_rows(rec.details, 0)[0]
        self.assertGreaterEqual(row["gc_count"], 1)
        self.assertGreater(row["gc_ns"], 0)
        self.assertNotIn(rec._on_gc, gc.callbacks)

    def test_not_recording_keeps_nothing(self):
        bp = BP(self.S)
        rec = self.engine.StepRecorder(bp)
        bp.scheduler.waiting_requests["a"] = State("a", 3, self.S.PREFILLING)
        bp.prepare_next_batch()
        bp.generation_step()
        bp.update_batch()
        rec.close()
        self.assertEqual((rec.steps, rec.details), ([], []))


if __name__ == "__main__":
    unittest.main()
