"""Unit tests of the torch-free parts of the real bench (python3 -m unittest
discover -s stages/real_bench/tests)."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.dirname(HERE)
sys.path.insert(0, RUNNER)

import bench_core as core  # noqa: E402


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def make_workload(d, lengths, intervals):
    write(os.path.join(d, "trace_lengths.csv"), "request_id,prompt_id,num_prefill_tokens,num_decode_tokens\n" + lengths)
    write(os.path.join(d, "trace_intervals.csv"), "request_id,inter_arrival_ns,arrival_time_ns\n" + intervals)


class SharedGPUIdentityTest(unittest.TestCase):
    def test_runner_uses_the_shared_code(self):
        # run.py calls core.device_identity and core.smi_gpus; they are
        # stages/common/gpuident.py's, not a copy.
        import gpuident
        self.assertIs(core.device_identity, gpuident.device_identity)
        self.assertIs(core.smi_gpus, gpuident.smi_gpus)


class WorkloadTest(unittest.TestCase):
    def test_read_sorts_by_arrival_and_joins(self):
        with tempfile.TemporaryDirectory() as d:
            make_workload(d, "0,0,10,3\n1,1,20,4\n2,2,5,1\n", "0,0,0\n1,500,500\n2,0,500\n")
            reqs = core.read_workload(d)
        self.assertEqual([r["id"] for r in reqs], [0, 1, 2])
        self.assertEqual(reqs[1], {"id": 1, "prefill": 20, "decode": 4, "arrival_ns": 500})

    def test_errors_name_file_row_and_column(self):
        cases = [
            ("0,0,10,x\n", "0,0,0\n", "trace_lengths.csv: row 2 column num_decode_tokens: not an integer"),
            ("0,0,10,3\n", "1,0,0\n", "request 0 has no row in trace_intervals.csv"),
            ("0,0,10,3\n0,0,1,1\n", "0,0,0\n", "row 3 column request_id: 0 appears twice"),
            ("0,0,0,3\n", "0,0,0\n", "needs >= 1 prefill"),
            ("0,0,10,3\n", "0,0,0\n1,0,0\n", "request 1 has no row in trace_lengths.csv"),
        ]
        for lengths, intervals, want in cases:
            with tempfile.TemporaryDirectory() as d:
                make_workload(d, lengths, intervals)
                with self.assertRaises(core.BenchError) as cm:
                    core.read_workload(d)
                self.assertIn(want, str(cm.exception))

    def test_bad_header(self):
        with tempfile.TemporaryDirectory() as d:
            write(os.path.join(d, "trace_lengths.csv"), "id,prefill\n")
            write(os.path.join(d, "trace_intervals.csv"), "request_id,inter_arrival_ns,arrival_time_ns\n")
            with self.assertRaises(core.BenchError) as cm:
                core.read_workload(d)
            self.assertIn("row 1: header", str(cm.exception))

    def test_digest_matches_schema_definition(self):
        with tempfile.TemporaryDirectory() as d:
            make_workload(d, "0,0,10,3\n", "0,0,0\n")
            h = hashlib.sha256()
            for name in ("trace_lengths.csv", "trace_intervals.csv"):
                b = read(os.path.join(d, name), "rb")
                h.update(name.encode() + b"\x00" + str(len(b)).encode() + b"\x00" + b)
            self.assertEqual(core.workload_digest(d), h.hexdigest())

    def test_digest_of_recorded_workload(self):
        # The recorded runs carry the digest gsim computed; the runner must agree.
        root = os.path.join(RUNNER, "..", "..", "testdata", "real")
        metas = []
        for dirpath, _, files in os.walk(root):
            if "run_meta.json" in files:
                metas.append(dirpath)
        if not metas:
            self.skipTest("no recorded runs under testdata/real")
        for run in metas:
            meta = json.loads(read(os.path.join(run, "run_meta.json")))
            wl = os.path.join(os.path.dirname(run), "workload")
            self.assertEqual(core.workload_digest(wl), meta["workload_digest"], run)


class ParamsTest(unittest.TestCase):
    def test_defaults(self):
        p = core.resolve_params({})
        self.assertEqual(p["scheduler"], "fifo")
        self.assertEqual(p["hardware"], "h100")
        self.assertTrue(p["timestamps"])

    def test_unknown_and_bad(self):
        with self.assertRaises(core.BenchError) as cm:
            core.resolve_params({"schedular": "fifo"})
        self.assertIn("with.schedular: unknown parameter", str(cm.exception))
        with self.assertRaises(core.BenchError) as cm:
            core.resolve_params({"scheduler": "lifo", "block_size": 0, "cuda_graphs": "yes"})
        msg = str(cm.exception)
        for want in ("with.scheduler", "with.block_size", "with.cuda_graphs"):
            self.assertIn(want, msg)

    def test_num_blocks_null_needs_memory_share(self):
        with self.assertRaises(core.BenchError):
            core.resolve_params({"num_blocks": None})
        self.assertIsNone(core.resolve_params({"num_blocks": None, "memory_share": 0.5})["num_blocks"])


class HardwareTest(unittest.TestCase):
    def test_kind(self):
        self.assertEqual(core.hardware_kind("NVIDIA H100 80GB HBM3"), "h100")
        self.assertEqual(core.hardware_kind("NVIDIA H200"), "h200")
        self.assertEqual(core.hardware_kind("NVIDIA A100-SXM4-80GB"), "a100")
        self.assertIsNone(core.hardware_kind("NVIDIA L4"))

    def test_check(self):
        self.assertIsNone(core.check_hardware("h100", "NVIDIA H100 80GB HBM3", False))
        msg = core.check_hardware("a100", "NVIDIA H100 80GB HBM3", False)
        self.assertIn("declares hardware: a100", msg)
        self.assertIn("NVIDIA H100 80GB HBM3", msg)
        self.assertIn("allow_hardware_mismatch: true", msg)
        self.assertIsNone(core.check_hardware("a100", "NVIDIA H100 80GB HBM3", True))


class MetricsTest(unittest.TestCase):
    reqs = [{"id": 1, "prefill": 5, "decode": 3, "arrival_ns": 100},
            {"id": 0, "prefill": 7, "decode": 2, "arrival_ns": 0}]

    def test_assemble(self):
        res = {0: {"token_times_ns": [50, 70], "status": "ok"},
               1: {"token_times_ns": [150, 149, 200], "status": "ok"}}
        rows, toks = core.assemble(self.reqs, res)
        self.assertEqual([r["request_id"] for r in rows], [0, 1])
        r1 = rows[1]
        self.assertEqual((r1["first_token_time_ns"], r1["ttft_ns"], r1["completion_time_ns"]), (150, 50, 200))
        # times are made non-decreasing so token latencies are never negative
        self.assertEqual([t["token_latency_ns"] for t in toks if t["request_id"] == 1], [0, 0, 50])
        self.assertEqual([t["token_index"] for t in toks], [0, 1, 0, 1, 2])

    def test_wrong_count_and_missing_fail(self):
        rows, toks = core.assemble(self.reqs, {1: {"token_times_ns": [150], "status": "ok"}})
        by = {r["request_id"]: r for r in rows}
        self.assertEqual(by[1]["status"], "failed")
        self.assertEqual(by[1]["error_type"], "token_count")
        self.assertEqual(by[1]["completion_time_ns"], -1)
        self.assertEqual(by[1]["num_decode_tokens_actual"], 1)
        self.assertEqual(by[0]["error_type"], "missing")
        self.assertEqual(by[0]["ttft_ns"], -1)
        self.assertEqual(len(toks), 1)

    def test_write_run_adds_error_columns_only_on_failure(self):
        with tempfile.TemporaryDirectory() as d:
            rows, toks = core.assemble(self.reqs, {0: {"token_times_ns": [50, 70], "status": "ok"},
                                                   1: {"token_times_ns": [150, 160, 170], "status": "ok"}})
            core.write_run(d, rows, toks, [], {"schema_version": 1})
            head = read(os.path.join(d, "request_metrics.csv")).splitlines()[0]
            self.assertEqual(head.split(","), core.REQUEST_COLUMNS)
            rows[0]["status"] = "failed"
            core.write_run(d, rows, toks, None, {})
            head = read(os.path.join(d, "request_metrics.csv")).splitlines()[0]
            self.assertEqual(head.split(","), core.REQUEST_COLUMNS + core.REQUEST_ERROR_COLUMNS)

    def test_summary(self):
        rows, _ = core.assemble(self.reqs, {0: {"token_times_ns": [50, 70], "status": "ok"},
                                            1: {"token_times_ns": [150, 160, 170], "status": "ok"}})
        s = core.summarize(rows, 1_000_000_000)
        self.assertEqual(s["num_ok"], 2)
        self.assertAlmostEqual(s["output_tokens_per_s"], 5.0)
        self.assertEqual(s["tpot_p50_ns"], 15)  # (20/1 + 20/2) / 2

    def test_step_row(self):
        row = core.step_row(3, 10, 20, [(False, 100, 100), (True, 1, 501), (True, 1, 40)])
        self.assertEqual(row["num_prefill_tokens"], 100)
        self.assertEqual(row["num_decode_tokens"], 2)
        self.assertEqual((row["num_requests"], row["num_prefill_requests"], row["num_decode_requests"]), (3, 1, 2))
        self.assertEqual(row["num_context_tokens"], 641)

    def test_percentile_and_lateness(self):
        self.assertEqual(core.percentile([1, 2, 3, 4], 50), 2.5)
        self.assertIsNone(core.percentile([], 50))
        late = core.lateness_stats([0, 100, 200], [5, 100, 230])
        self.assertEqual(late["max_ns"], 30)
        self.assertEqual(late["p50_ns"], 5)

    def test_prompt_ids_seeded_and_below_specials(self):
        a = core.prompt_ids(1, 7, 500)
        self.assertEqual(a, core.prompt_ids(1, 7, 500))
        self.assertNotEqual(a, core.prompt_ids(1, 8, 500))
        self.assertEqual(len(a), 500)
        self.assertTrue(all(0 <= t < 151643 for t in a))


class RunnerExitTest(unittest.TestCase):
    """run.py's refusals without a GPU, through the real entry point."""

    def spec(self, d, params=None, workload=True):
        wl = os.path.join(d, "wl")
        os.makedirs(wl)
        make_workload(wl, "0,0,10,3\n", "0,0,0\n")
        spec = {"schema_version": 1, "params": params or {}, "out_dir": os.path.join(d, "out"),
                "inputs": {"workload": [{"dir": wl}]} if workload else {}}
        p = os.path.join(d, "spec.json")
        write(p, json.dumps(spec))
        return p

    def run_runner(self, spec):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        return subprocess.run([sys.executable, os.path.join(RUNNER, "run.py"), "--spec", spec],
                              capture_output=True, text=True, env=env)

    def test_no_cuda_exits_4(self):
        with tempfile.TemporaryDirectory() as d:
            r = self.run_runner(self.spec(d))
        self.assertEqual(r.returncode, core.EXIT_NO_CUDA, r.stderr)
        self.assertIn("no CUDA GPU", r.stderr)
        self.assertIn("replay", r.stderr)

    def test_bad_spec_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            r = self.run_runner(self.spec(d, params={"bogus": 1}))
            self.assertEqual(r.returncode, 2)
            self.assertIn("with.bogus", r.stderr)
        with tempfile.TemporaryDirectory() as d:
            r = self.run_runner(self.spec(d, workload=False))
            self.assertEqual(r.returncode, 2)
            self.assertIn("inputs.workload", r.stderr)


if __name__ == "__main__":
    unittest.main()
