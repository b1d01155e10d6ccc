"""The check every export passes before anything is written (ASSUMPTIONS.md U5): the ONNX
model in onnxruntime and the deploy net in pycaffe on the same transformed cells (the run's
test split by default), the fused probabilities within `ledger.EXPORT_MAX_ABS_DIFF` and the
same label for every cell."""
from __future__ import annotations

import time

import numpy as np

from .. import ledger
from ..data.folder import DataFolder
from ..errors import UserError
from ..experiment import evaluate
from ..experiment.run import RunDir
from .inputs import load_views, read_inputs
from .onnx_model import onnxruntime, session


class ExportCheckFailed(UserError):
    """onnxruntime and pycaffe disagree on the check cells: nothing was written."""


def compare(net, model_bytes: bytes, inputs: np.ndarray, batch_size: int = 64) -> dict:
    """pycaffe and onnxruntime on the same transformed inputs (N x 1 x 76 x 76 float32): the
    largest differences, whether every fused label agrees, and seconds per cell of each."""
    sess = session(model_bytes)
    branches = [b for b in evaluate.BRANCH_BLOBS["prob"].values() if b in net.blobs]
    caffe_out = {b: [] for b in branches}
    ort_out = {b: [] for b in branches}
    t_caffe = t_ort = 0.0
    for start in range(0, len(inputs), batch_size):
        x = np.ascontiguousarray(inputs[start:start + batch_size], np.float32)
        t = time.perf_counter()
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        net.forward()
        t_caffe += time.perf_counter() - t
        for b in branches:
            caffe_out[b].append(net.blobs[b].data.copy())
        t = time.perf_counter()
        got = sess.run(branches, {"data": x})
        t_ort += time.perf_counter() - t
        for b, v in zip(branches, got):
            ort_out[b].append(v)
    caffe_p = {b: np.concatenate(v).astype(np.float64) for b, v in caffe_out.items()}
    ort_p = {b: np.concatenate(v).astype(np.float64) for b, v in ort_out.items()}
    fused_c = sum(caffe_p.values()) / len(branches)
    fused_o = sum(ort_p.values()) / len(branches)
    n = len(inputs)
    return {
        "cells": n,
        "fused_max_abs_diff": float(np.abs(fused_c - fused_o).max()),
        "branch_max_abs_diff": {b: float(np.abs(caffe_p[b] - ort_p[b]).max()) for b in branches},
        "labels_identical": bool(np.array_equal(fused_c.argmax(1), fused_o.argmax(1))),
        "labels_differing": int((fused_c.argmax(1) != fused_o.argmax(1)).sum()),
        "seconds_per_cell": {"caffe": t_caffe / n, "onnxruntime": t_ort / n},
        "batch_size": batch_size,
    }


def check_inputs(run: RunDir, data_dir, check_images, limit: int | None, transform,
                 stretch: bool) -> tuple[np.ndarray, str]:
    """The cells the export is checked on, transformed: given images, else the run's test
    split; and where they came from."""
    if check_images:
        inputs = read_inputs(check_images)
        _, views, _ = load_views(inputs.cells, stretch=stretch, skip_bad=False, progress=False)
        views, source = views[:, None], str(check_images)
    else:
        data = DataFolder(data_dir) if data_dir else run.data_folder()
        if data is None:
            raise UserError(f"the data folder of {run.path} is not there to check the export "
                            "on: give DATA_DIR=<data folder> or CHECK_IMAGES=<images>")
        data.require("test", mean=False)
        views, _, _ = evaluate.read_lmdb(data.lmdb("test"))
        source = str(data.lmdb("test"))
    if limit:
        views = views[:limit]
    return transform(views), source


def check(run: RunDir, net, model_bytes: bytes, x: np.ndarray, source: str,
          batch_size: int) -> dict:
    """check.json: `compare` on the check cells `x` (from `source`) with the verdict; raises
    ExportCheckFailed when it fails."""
    result = compare(net, model_bytes, x, batch_size)
    result.update({"source": source, "threshold": ledger.EXPORT_MAX_ABS_DIFF,
                   "onnxruntime": onnxruntime().__version__})
    result["passed"] = (result["fused_max_abs_diff"] < ledger.EXPORT_MAX_ABS_DIFF
                        and result["labels_identical"])
    if not result["passed"]:
        raise ExportCheckFailed(
            f"the ONNX export of {run.deploy} disagrees with pycaffe on {result['cells']} "
            f"cells of {source}: fused probabilities differ by up to "
            f"{result['fused_max_abs_diff']:.3g} (limit {ledger.EXPORT_MAX_ABS_DIFF:g}), "
            f"{result['labels_differing']} label(s) differ; nothing was written")
    return result
