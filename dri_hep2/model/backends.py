"""The two backends of `make predict`: the run's deploy net in pycaffe (`caffe`), or its ONNX
export in onnxruntime (`onnx`, dri_hep2.model.onnx_model), chosen and checked by `open_model`.
Either gives the branch softmaxes of a batch of 76x76 views with the run's TEST transform.
pycaffe is imported only when the Caffe backend is opened, so BACKEND=onnx runs without Caffe.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import UserError
from ..experiment.run import RunDir
from ..gpus import Gpus
from .onnx_model import OnnxModel

BACKENDS = ("caffe", "onnx")
# Cells per forward pass (make predict, tools/predict.py --batch), the fastest measured for the
# Caffe backend. `make bench-predict BENCH_ARGS="--batch 8,16,32,64,128,256"` (2026-12-07,
# 2-core AMD EPYC, Caffe on OpenMP OpenBLAS, load 3.6-3.9 with another job training on one
# core; 256 cells, fastest of 3 passes), Caffe cells/s: 45.0, 46.5, 46.9, 47.2, 46.5, 46.2;
# onnxruntime 52.3, 50.8, 69.9, 74.9, 74.0, 75.4. Earlier (pthread OpenBLAS, load 2.1, the
# unfolded net alone): batch 16 68.8, 64 72.0, 256 68.7 cells/s. Flat from 16 up, 64 first
# both times; a larger batch only holds more memory.
DEFAULT_BATCH = 64
# Random cells the folded Caffe net is checked on against the unfolded one when loaded.
FOLD_CHECK_CELLS = 4


def parse_batch(text: str | int) -> int:
    """--batch's value: a positive number of cells per forward pass, else a UserError that
    names it (one line, exit 2, as every tool's bad value)."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"--batch {text}: give a positive whole number of cells per forward "
                        f"pass (default {DEFAULT_BATCH})")
    return value


class CaffeModel:
    """The run's deploy net and a snapshot in pycaffe, with the run's TEST transform.

    `fold` (default): the net that runs is the deploy net with its BatchNorm + Scale pairs
    folded (dri_hep2.model.caffe_fold), checked against the unfolded net on FOLD_CHECK_CELLS
    random cells when loaded; the unfolded net runs when the check fails. `folding` says what
    was done (predict.json records it)."""

    backend = "caffe"

    def __init__(self, run: RunDir, weights: str | Path | None = None, gpus: Gpus = Gpus(),
                 fold: bool = True):
        from ..engine import caffe_env
        from ..experiment import evaluate      # pycaffe: only for this backend
        from ..net import proto
        from . import caffe_fold
        run.require(RunDir.deploy, RunDir.train_val)
        self.deploy = run.deploy
        self.weights = run.weights(weights)
        self.classes = run.class_names()
        self.stretch = run.input_stretch()
        caffe = caffe_env.use_device(gpus)
        self.net = caffe.Net(str(run.deploy), caffe.TEST, weights=str(self.weights))
        self.transform = evaluate.test_transform(run.train_val, base_dir=run.path)
        self._evaluate = evaluate
        self.folding = {"folded": False}
        if fold:
            views = np.random.default_rng(0).integers(
                0, 256, (FOLD_CHECK_CELLS, 1, *self.net.blobs["data"].data.shape[2:]))
            result = caffe_fold.fold(proto.read(run.deploy), self.net, self.transform(views))
            self.net = result.net
            self.folding = {"folded": result.passed, "pairs": result.pairs,
                            "into_convolution": result.into_conv,
                            "check_max_abs_diff": result.max_abs_diff}
            if result.pairs and not result.passed:
                print(f"warning: {run.deploy}: the folded net differs from the deploy net by "
                      f"{result.max_abs_diff:.3g} (> {caffe_fold.TOLERANCE:g}); running the "
                      "deploy net unfolded", file=sys.stderr)

    def probabilities(self, views: np.ndarray) -> dict[int, np.ndarray]:
        outputs, max_diff = self._evaluate.branch_outputs(
            self.net, views[:, None], self.transform, batch_size=len(views))
        # make predict fuses the branches itself, from a net that must be the one trained.
        self._evaluate.require_fused_sum(self.deploy, max_diff)
        return outputs["prob"]


def open_model(backend: str, run: RunDir | None, *, model_dir: str | Path | None = None,
               weights: str | Path | None = None, gpus: Gpus = Gpus()):
    if backend not in BACKENDS:
        raise UserError(f"BACKEND={backend!r}: one of {', '.join(BACKENDS)}")
    if backend == "onnx":
        folder = model_dir or (run.export if run else None)
        if folder is None:
            raise UserError("BACKEND=onnx needs RUN_DIR (with export/) or --model <folder>")
        if weights:
            raise UserError("WEIGHTS= is for the Caffe backend: an export holds the weights "
                            "it was made from (make export WEIGHTS=...)")
        if gpus:
            raise UserError("GPU= is for the Caffe backend: the ONNX backend runs on the CPU")
        model = OnnxModel(folder)
        newest = run.newest("caffemodel") if run and not model_dir else None
        if newest is not None and newest.name != model.weights:
            raise UserError(f"{run.export} holds {model.weights}, but the run's newest "
                            f"snapshot is {newest.name}: run 'make export RUN_DIR={run.path}' "
                            "first (or give MODEL=<export folder> to use that one)")
        return model
    if model_dir:
        raise UserError(f"MODEL={model_dir} is an ONNX export: run it with BACKEND=onnx")
    if run is None:
        raise UserError("BACKEND=caffe needs RUN_DIR=<run folder>")
    return CaffeModel(run, weights, gpus)


def branch_probabilities(model, views: np.ndarray, batch_size: int,
                         progress: bool = True) -> dict[int, np.ndarray]:
    """Each branch's softmax (N x K, float64) over every view, `batch_size` views a batch."""
    parts: dict[int, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(views), batch_size), desc=f"predict ({model.backend})",
                      unit="batch", disable=not progress):
        for b, p in model.probabilities(views[start:start + batch_size]).items():
            parts.setdefault(b, []).append(p)
    return {b: np.concatenate(v).astype(np.float64) for b, v in parts.items()}
