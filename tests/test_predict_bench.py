"""make predict's Caffe backend at onnxruntime's speed (issue 20, item 3), with real Caffe and
real onnxruntime: the folded deploy net gives the unfolded net's probabilities; `make
bench-predict`'s library times both backends through make predict's code, and its ratio is
computed from the passes it measured; --batch refuses a bad value in one line and any batch
size gives the same predictions."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dri_hep2.experiment.run import RunDir
from dri_hep2.folders import REPO_ROOT
from dri_hep2.model import backends, bench_subject, caffe_fold, predict, predict_bench
from dri_hep2.net import proto


def test_the_folded_dri_is_the_deploy_net(caffe):
    """Every BatchNorm + Scale of DRI folds (9 into the convolution before them, 24 into one
    Scale each), with statistics and a scale factor as training leaves them, and the folded
    net's branch softmaxes and their sum stay within 1e-4 of the deploy net's (measured:
    1e-7); a fold that gets the numbers wrong is caught by its own check."""
    from test_onnx_export import randomise

    path = REPO_ROOT / "prototxt" / "dri_deploy.prototxt"
    net_param = proto.read(path)
    net = caffe.Net(str(path), caffe.TEST)
    randomise(net)
    x = np.random.default_rng(2).normal(0, 1, (3, 1, 76, 76)).astype(np.float32)
    result = caffe_fold.fold(net_param, net, x)
    assert result.passed and result.net is not net
    assert (result.pairs, result.into_conv) == (33, 9)
    assert result.max_abs_diff < 1e-5
    types = [layer.type for layer in result.net.layers]
    assert "BatchNorm" not in types and types.count("Scale") == 24
    # On other inputs than the check's.
    y = np.random.default_rng(3).normal(0, 1, (5, 1, 76, 76)).astype(np.float32)
    assert caffe_fold.max_abs_diff(net, result.net, y) < 1e-4
    assert np.ptp(result.net.blobs["loss3/prob"].data) > 1e-3     # not flat softmaxes

    real = caffe_fold._affine
    try:
        caffe_fold._affine = lambda net, pair: tuple(v * 1.01 for v in real(net, pair))
        wrong = caffe_fold.fold(net_param, net, x)
    finally:
        caffe_fold._affine = real
    assert not wrong.passed and wrong.net is net and wrong.max_abs_diff > 1e-4


def test_the_caffe_backend_folds_a_trained_run_and_agrees(small_run):
    """make predict's Caffe backend on a trained run: folded (and says so), the probabilities
    of the unfolded deploy net within 1e-4 on the run's test cells."""
    from dri_hep2.experiment import evaluate
    run = RunDir(small_run.run)
    views, _, _ = evaluate.read_lmdb(small_run.data / "lmdb" / "test")
    folded = backends.CaffeModel(run)
    plain = backends.CaffeModel(run, fold=False)
    assert folded.folding["folded"] and folded.folding["check_max_abs_diff"] < 1e-4
    assert not plain.folding["folded"]
    a, b = folded.probabilities(views[:, 0]), plain.probabilities(views[:, 0])
    assert set(a) == {1, 2, 3}
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, caffe):
    """The bench's stand-in subject (what `make bench-predict` makes on a fresh machine) and
    32 of its cells."""
    work = tmp_path_factory.mktemp("bench_predict")
    subject = bench_subject.fresh_subject(work)
    views, _ = bench_subject.bench_views(subject.replica, 32)
    return subject, views


def test_the_bench_times_both_backends_and_the_ratio_is_theirs(fresh):
    subject, views = fresh
    assert subject.random_weights and subject.weights.name == "dri_iter_0.caffemodel"
    specs = predict_bench.specs(subject.run.path, subject.weights, subject.export)
    lines = []
    rows = predict_bench.measure(specs, views, [8, 32], repeats=1, say=lines.append)
    assert sorted((r.batch, r.backend) for r in rows) == [(8, "caffe"), (8, "onnx"),
                                                          (32, "caffe"), (32, "onnx")]
    assert len(lines) == 8          # a cold and a timed pass per row
    by = {(r.batch, r.backend): r for r in rows}
    for r in rows:
        assert len(r.seconds) == 1 and r.seconds[0] > 0 and r.cold_s > 0 and len(r.loads) == 1
        assert r.best == pytest.approx(32 / r.seconds[0])
    ratios = predict_bench.ratios(rows)
    for b in (8, 32):
        caffe_s, onnx_s = by[(b, "caffe")].seconds[0], by[(b, "onnx")].seconds[0]
        assert ratios[b][0] == pytest.approx(onnx_s / caffe_s)
        assert f"| {b} | " in predict_bench.table(rows)
    assert f"{ratios[32][0]:.2f}, {ratios[32][1]:.2f}" in predict_bench.table(rows)
    # A fair comparison: the two backends compute the same probabilities, at any batch size.
    agree = predict_bench.agreement(rows)
    for b in (8, 32):
        assert agree["backends"][b]["max_abs_diff"] < 1e-4
        assert agree["backends"][b]["calls_differing"] == 0
    assert max(agree["batch_sizes"].values()) < 1e-5
    # The stand-in's calls are not all one class (its BatchNorms are calibrated, not zero).
    assert len(set(by[(8, "caffe")].fused.argmax(1))) > 1
    summary = json.loads(json.dumps(predict_bench.summary(rows), default=str))
    assert summary["ratios"]["32"]["best"] == pytest.approx(ratios[32][0])


def test_the_bench_tool_on_a_run(fresh, tmp_path):
    """tools/bench_predict.py with --run-dir: its table, agreement and ratio lines."""
    from test_tools_cli import run_tool
    subject, _ = fresh
    out = run_tool("bench_predict.py", "--run-dir", str(subject.run.path), "--images",
                   str(subject.replica), "--cells", "16", "--batch", "16", "--repeats", "1",
                   "--json", str(tmp_path / "bench.json"))
    assert out.returncode == 0, out.stderr
    assert "| Caffe (pycaffe) | 16 |" in out.stdout and "| onnxruntime | 16 |" in out.stdout
    assert "0 of 16 calls differ" in out.stdout
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["cells"] == 16 and len(result["rows"]) == 2
    # The subject's own export folder was not there: one was made in the scratch folder.
    assert not subject.run.export.exists()


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_batch_flag(small_run, tmp_path):
    from test_tools_cli import one_line_error, run_tool
    for bad in ("0", "-3", "abc", "2.5"):
        out = run_tool("predict.py", "--images", str(small_run.i3a), "--run-dir",
                       str(small_run.run), "--split", "test", "--batch", bad,
                       "--out", str(tmp_path / "bad"))
        one_line_error(out, "predict.py", f"--batch {bad}", "positive whole number")
        assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    results = {}
    for batch in (1, 5, 64):
        summary = predict.predict(small_run.i3a, run_dir=small_run.run, split="test",
                                  out=tmp_path / f"b{batch}", batch_size=batch,
                                  progress=False)
        assert summary["batch_size"] == batch and summary["caffe_folding"]["folded"]
        results[batch] = read_rows(tmp_path / f"b{batch}" / "predictions.csv")
    for batch in (5, 64):
        assert len(results[batch]) == len(results[1]) == 28
        for r, s in zip(results[1], results[batch]):
            assert r["id"] == s["id"] and r["fused_label"] == s["fused_label"]
            diffs = {k: abs(float(r[k]) - float(s[k])) for k in r
                     if k.startswith(("fc", "fused_")) and k != "fused_label"}
            # The CSV's six decimals: at most one unit of the last one apart.
            assert max(diffs.values()) < 1.5e-6, (batch, diffs)
