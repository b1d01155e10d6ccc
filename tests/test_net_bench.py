"""The benchmark's timing and FLOP accounting through the real `caffe time` (issue 3)."""
from __future__ import annotations

import pytest

from dri_hep2.net import bench, build, describe


def test_caffe_time_reports_a_forward_backward_time_and_flops():
    t = bench.caffe_time("sri", batch_size=2, iterations=1)
    d = describe.describe(net_param=build.deploy("sri"))
    assert t.ms_per_iter > 0
    assert t.gflop_per_iter * 1e9 == pytest.approx(2 * (3 * d.flops - d.layer_flops["conv1/7x7_s2"]))
    assert t.params == d.params


def test_sgemm_reference_is_measured():
    assert bench.sgemm_gflops(size=256, repeats=2) > 0.1
