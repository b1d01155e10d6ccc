"""`caffe time`'s per-layer breakdown, grouped by layer type and stage (issue 14, part 2)."""
from __future__ import annotations

import pytest

from dri_hep2.engine import caffe_env
from dri_hep2.net import build, profile


@pytest.fixture(scope="module")
def dri_profile():
    return profile.caffe_time(caffe_env.caffe_binary(), build.benchmark("dri", 2), iterations=2)


def test_every_layer_of_the_net_is_timed_and_typed(dri_profile):
    net = build.benchmark("dri", 2)
    named = {layer.name for layer in net.layer}
    timed = {layer.name for layer in dri_profile.layers}
    assert named <= timed                         # Caffe's inserted Split layers come on top
    assert all(lt.type == "Split" for lt in dri_profile.layers if lt.name not in named)
    assert "?" not in {lt.type for lt in dri_profile.layers}
    assert len(dri_profile.iterations_ms) == 2


def test_layer_times_add_up_to_caffes_own_totals(dri_profile):
    fwd = sum(lt.forward_ms for lt in dri_profile.layers)
    bwd = sum(lt.backward_ms for lt in dri_profile.layers)
    # caffe time's per-pass timers include the loop around the layers: a little more.
    assert fwd == pytest.approx(dri_profile.forward_ms, rel=0.1, abs=5)
    assert bwd == pytest.approx(dri_profile.backward_ms, rel=0.1, abs=5)
    by_type = dri_profile.by_type()
    assert sum(f + b for f, b in by_type.values()) == pytest.approx(dri_profile.layer_sum_ms)
    assert max(by_type, key=lambda t: sum(by_type[t])) == "Convolution"


def test_stages_follow_the_layer_names(dri_profile):
    assert profile.stage_of("conv1/7x7_s2") == "stem"
    assert profile.stage_of("pool1/3x3_s2") == "stem"
    assert profile.stage_of("pool2/3x3_s2") == "stage 2"
    assert profile.stage_of("dri_3_2/5x5_3x3_bn") == "stage 3"
    assert profile.stage_of("inception_1_1/1x1") == "stage 1"
    assert profile.stage_of("loss2/fc") == "head 2"
    assert set(dri_profile.by_stage()) == {"stem", "stage 1", "stage 2", "stage 3",
                                           "head 1", "head 2", "head 3"}
    table = profile.shares_table({"run": dri_profile}, "type")
    assert table.splitlines()[2].startswith("| Convolution |")
