"""Tests of the runners' shared GPU identity: python3 -m unittest discover -s stages/common/tests"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gpuident as gi  # noqa: E402


class DeviceIdentityTest(unittest.TestCase):
    SMI = "0, GPU-aaaa-1111, NVIDIA H200\n1, GPU-bbbb-2222, NVIDIA H200\n"

    def test_index_from_nvidia_smi_by_uuid(self):
        env = {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        # torch reports the UUID without the GPU- prefix.
        d = gi.device_identity(env, "NVIDIA H200", "bbbb-2222", self.SMI)
        self.assertEqual(d["index"], 1)
        self.assertEqual(d["uuid"], "GPU-bbbb-2222")
        self.assertEqual(d["name"], "NVIDIA H200")
        self.assertEqual(d["index_source"], "nvidia-smi")
        self.assertEqual(d["cuda_visible_devices"], "1")

    def test_index_from_assignment_without_nvidia_smi(self):
        env = {"CUDA_VISIBLE_DEVICES": "3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        d = gi.device_identity(env, "NVIDIA H200", "", "")
        self.assertEqual((d["index"], d["index_source"], d["uuid"]), (3, "CUDA_VISIBLE_DEVICES", ""))

    def test_unknown_when_nothing_tells(self):
        # An index in CUDA's own order says nothing about the physical GPU.
        d = gi.device_identity({"CUDA_VISIBLE_DEVICES": "3"}, "NVIDIA H200", "", "")
        self.assertIsNone(d["index"])
        d = gi.device_identity({}, "NVIDIA H200", "cccc", self.SMI)
        self.assertIsNone(d["index"])
        self.assertEqual(d["uuid"], "GPU-cccc")

    def test_smi_gpus(self):
        class R:
            returncode, stdout = 0, "0, GPU-a, X\n"
        self.assertEqual(gi.smi_gpus(run=lambda *a, **k: R()), "0, GPU-a, X\n")

        def missing(*a, **k):
            raise FileNotFoundError("nvidia-smi")
        self.assertEqual(gi.smi_gpus(run=missing), "")


if __name__ == "__main__":
    unittest.main()
