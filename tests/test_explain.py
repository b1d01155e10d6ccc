"""`make explain`: the saliency gradient is Caffe's backward pass (checked against finite
differences of the forward pass), Grad-CAM is computed at the chosen block, and a run gets a
montage per class linked from its results page (issue 10, item 4)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dri_hep2.model import explain
from dri_hep2.experiment import report
from dri_hep2.errors import UserError
from dri_hep2.net import proto
from dri_hep2.experiment.run import RunDir

SMOOTH_NET = """
name: "smooth"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 12 dim: 12 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "block/output" }
layer { name: "pool" type: "Pooling" bottom: "block/output" top: "pool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool" top: "fc1" inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "fc2" type: "InnerProduct" bottom: "block/output" top: "fc2" inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "p1" type: "Softmax" bottom: "fc1" top: "loss1/prob" }
layer { name: "p2" type: "Softmax" bottom: "fc2" top: "loss2/prob" }
layer { name: "prob" type: "Eltwise" bottom: "loss1/prob" bottom: "loss2/prob" top: "prob" }
"""


def test_the_gradient_is_the_derivative_of_the_fused_prediction(caffe, tmp_path):
    """Central differences of `prob[target]` through the forward pass agree with the gradient
    Caffe's backward gives at a dozen input pixels."""
    path = tmp_path / "smooth.prototxt"
    path.write_text(SMOOTH_NET)
    net = caffe.Net(str(path), caffe.TEST)
    mean, var, factor = net.params["bn"]
    mean.data[...], var.data[...], factor.data[...] = 0.2, 1.5, 1.0
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (2, 1, 12, 12)).astype(np.float32)
    prob, grad, cam, layer_grad = explain.saliency(net, x, "block/output")
    target = prob.argmax(axis=1)
    assert np.abs(grad).max() > 0 and layer_grad.shape == (2, 4, 12, 12)
    h = 1e-2
    for _ in range(12):
        n, i, j = rng.integers(0, 2), rng.integers(0, 12), rng.integers(0, 12)
        values = []
        for sign in (1, -1):
            xp = x.copy()
            xp[n, 0, i, j] += sign * h
            net.blobs["data"].data[...] = xp
            net.forward()
            values.append(float(net.blobs["prob"].data[n, target[n]]))
        numeric = (values[0] - values[1]) / (2 * h)
        assert grad[n, 0, i, j] == pytest.approx(numeric, rel=2e-2, abs=2e-4)
    # Grad-CAM: the block's channels weighted by the mean gradient there, negatives cut, at
    # the input size, scaled to a peak of 1.
    net.blobs["data"].data[...] = x
    net.forward()
    acts = net.blobs["block/output"].data
    manual = np.maximum((layer_grad.mean(axis=(2, 3), keepdims=True) * acts).sum(axis=1), 0)
    for n in range(2):
        if manual[n].max() > 0:
            np.testing.assert_allclose(cam[n], manual[n] / manual[n].max(), atol=1e-5)
    assert cam.shape == (2, 12, 12) and cam.min() >= 0 and cam.max() <= 1


def test_explain_writes_a_montage_per_class_linked_from_the_run_page(small_run, caffe):
    run = RunDir(small_run.run)
    summary = explain.explain(run.path, cells=2)
    assert summary["layer"] == "dri_3_2/output"          # the last block (ledger U6)
    written = json.loads(run.explain_summary.read_text())
    assert written["layer"] == "dri_3_2/output"
    for name in run.class_names():
        entry = written["classes"][name]
        png = run.explain / entry["montage"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert len(entry["correct"]) <= 2 and len(entry["wrong"]) <= 2
        assert all(c["call"] == name for c in entry["correct"])
        assert all(c["call"] != name for c in entry["wrong"])
        assert len(entry["correct"]) + len(entry["wrong"]) == min(
            2, entry["test_cells"] - entry["wrong_cells"]) + min(2, entry["wrong_cells"])
    # 28 test cells of six classes: something was called wrongly by a 4-iteration net.
    assert sum(c["wrong_cells"] for c in written["classes"].values()) > 0
    page = report.run_page(run)
    assert "## What the net looks at" in page
    assert f"[{run.class_names()[0]}]({RunDir.explain}/{run.class_names()[0]}.png)" in page


def test_the_default_block_and_refused_layers(small_run, caffe):
    deploy = proto.read(RunDir(small_run.run).deploy)
    assert explain.last_block(deploy) == "dri_3_2/output"
    with pytest.raises(UserError, match="LAYER=no_such_blob: no such blob"):
        explain.explain(small_run.run, layer="no_such_blob", cells=1)
    # A blob overwritten in place (the BatchNorm output that Scale and PReLU rewrite) has
    # lost its values by the time Grad-CAM would read them.
    with pytest.raises(UserError, match="overwrites it in place"):
        explain.explain(small_run.run, layer="dri_3_2/input_bn", cells=1)
