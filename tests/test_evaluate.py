"""dri_hep2.experiment.evaluate with real pycaffe: one forward pass gives FC1, FC2, FC3; the
fusions and metrics agree with a NumPy recomputation; a deploy net whose `prob` is not the sum
is refused, naming the file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dri_hep2.experiment import evaluate, metrics
from dri_hep2.errors import UserError
from dri_hep2.experiment.run import RunDir

SCALE = 1 / 64


def tiny_nets(caffe, data_dir: Path, fused_operation):
    """deploy: data -> three InnerProducts -> loss<k>/prob -> Eltwise `prob`; train_val: only
    the TEST Data layer whose transform the evaluation must copy."""
    from caffe import layers as L, params as P

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 76, 76]))
    probs = []
    for k in (1, 2, 3):
        n[f"loss{k}/classifier"] = L.InnerProduct(n.data, num_output=6,
                                                  weight_filler=dict(type="gaussian", std=0.01))
        n[f"loss{k}/prob"] = L.Softmax(n[f"loss{k}/classifier"])
        probs.append(n[f"loss{k}/prob"])
    n.prob = L.Eltwise(*probs, operation=fused_operation)
    t = caffe.NetSpec()
    t.data, t.label = L.Data(source=str(data_dir / "lmdb" / "val"), backend=P.Data.LMDB,
                             batch_size=4, ntop=2, include=dict(phase=caffe.TEST),
                             transform_param=dict(scale=SCALE, mean_file=str(
                                 data_dir / "lmdb" / "mean.binaryproto")))
    return n.to_proto(), t.to_proto()


def make_run(caffe, run_dir: Path, data_dir: Path, fused_operation) -> Path:
    deploy, train_val = tiny_nets(caffe, data_dir, fused_operation)
    run_dir.mkdir()
    (run_dir / RunDir.deploy).write_text(str(deploy))
    (run_dir / RunDir.train_val).write_text(str(train_val))
    net = caffe.Net(str(run_dir / RunDir.deploy), caffe.TEST)
    (run_dir / RunDir.snapshots).mkdir()
    # The newest snapshot is taken by iteration, not by name: by name 200 sorts after 1000.
    for it in (200, 1000):
        net.save(str(run_dir / RunDir.snapshots / f"tiny_iter_{it}.caffemodel"))
    return run_dir


def test_branches_fusions_and_metrics_match_numpy(caffe, tiny_data_dir, tmp_path):
    run_dir = make_run(caffe, tmp_path / "run", tiny_data_dir, caffe.params.Eltwise.SUM)
    result = evaluate.evaluate(run_dir, tiny_data_dir, batch_size=5)  # 12 cells: 5 + 5 + 2

    assert result["iteration"] == 1000 and result["n"] == 12
    assert result == json.loads((run_dir / "eval.json").read_text())
    # Recompute FC1..FC3 in NumPy from the weights and the test LMDB (mean 30, scale 1/64).
    net = caffe.Net(str(run_dir / RunDir.deploy), caffe.TEST,
                    weights=str(run_dir / "snapshots/tiny_iter_1000.caffemodel"))
    images, labels, _ = evaluate.read_lmdb(tiny_data_dir / "lmdb" / "test")
    x = ((images.astype(np.float64) - 30.0) * SCALE).reshape(len(images), -1)
    branch, scores = {}, {}
    for k in (1, 2, 3):
        w, b = (p.data for p in net.params[f"loss{k}/classifier"])
        z = scores[k] = x @ w.T + b
        e = np.exp(z - z.max(axis=1, keepdims=True))
        branch[k] = e / e.sum(axis=1, keepdims=True)
    expected = metrics.evaluate_combos(labels, branch)
    assert set(result["combos"]) == {"3", "1+3", "2+3", "1+2+3"}
    for combo, scores in expected.items():
        assert result["combos"][combo]["mca"] == pytest.approx(scores["mca"])
        assert result["combos"][combo]["aca"] == pytest.approx(scores["aca"])
    assert result["confusion"] == expected["1+2+3"]["confusion"]
    assert result["mca"] == pytest.approx(expected["1+2+3"]["mca"])
    assert result["fused_prob_max_abs_diff"] < 1e-6
    # The other reading of the sum layer: raw classifier scores summed.
    for combo, expect in metrics.evaluate_combos(labels, scores).items():
        assert result["score_combos"][combo]["mca"] == pytest.approx(expect["mca"])
    # Per-cell predictions, and McNemar's counts from them.
    cells = result["cells"]
    assert cells["labels"] == labels.tolist() and len(cells["ids"]) == 12
    full = np.array(cells["predicted"]["prob"]["1+2+3"]) == labels
    only3 = np.array(cells["predicted"]["prob"]["3"]) == labels
    test = result["mcnemar"]["prob"]["3"]
    assert (test["a_only"], test["b_only"]) == (int((only3 & ~full).sum()),
                                                int((full & ~only3).sum()))
    # 95 % intervals around each figure (no split CSV here: the bootstrap resamples cells).
    assert result["intervals"]["specimens"] is None and "cells" in result["intervals"]["mca"]
    for figures in [result, *result["combos"].values(), *result["score_combos"].values()]:
        assert figures["mca_ci"][0] <= figures["mca"] <= figures["mca_ci"][1]
        assert figures["aca_ci"][0] <= figures["aca"] <= figures["aca_ci"][1]


def test_a_fused_blob_that_is_not_the_sum_is_refused(caffe, tiny_data_dir, tmp_path):
    run_dir = make_run(caffe, tmp_path / "run", tiny_data_dir, caffe.params.Eltwise.MAX)
    with pytest.raises(UserError, match=r"deploy\.prototxt: blob 'prob' differs from the sum"):
        evaluate.evaluate(run_dir, tiny_data_dir)


def test_explicit_weights_and_missing_snapshot(caffe, tiny_data_dir, tmp_path):
    run_dir = make_run(caffe, tmp_path / "run", tiny_data_dir, caffe.params.Eltwise.SUM)
    weights = run_dir / "snapshots/tiny_iter_200.caffemodel"
    assert evaluate.evaluate(run_dir, tiny_data_dir, weights=weights)["iteration"] == 200
    for f in (run_dir / RunDir.snapshots).iterdir():
        f.unlink()
    with pytest.raises(UserError, match="make train"):
        evaluate.evaluate(run_dir, tiny_data_dir)
