"""Evaluate a trained run on the test split: the branch probabilities FC1, FC2, FC3 from one
forward pass of the deploy net, the Table 3(b) fusions, MCA / ACA (Eq. 3, Table 4).

Input images get the transformation that the run's TEST-phase Data layer applies (its
`mean_file`, `mean_value`, `scale`, `crop_size`, read from RUN_DIR/train_val.prototxt), so the
deploy net sees what the validation net saw during training.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import atomic, caffe_env, metrics, paper
from .caffe_env import Gpus
from .data import lmdb_io
# Transform lives beside the decoder it follows, in a module without pycaffe (ONNX predict).
from .data.cells import Transform  # noqa: F401  (evaluate.Transform, as before)
from .data.folder import DataFolder
from .errors import UserError
from .net import proto
from .run import RunDir, snapshot_iteration

BRANCH_BLOBS = {1: "loss1/prob", 2: "loss2/prob", 3: "loss3/prob"}
FUSED_BLOB = "prob"
# The deploy net's Eltwise SUM must equal the sum of the branch softmaxes up to float32
# rounding of three values in [0, 1].
FUSED_TOLERANCE = 1e-5


def test_transform(train_val_path: str | Path, base_dir: str | Path = ".") -> Transform:
    """The transform of the TEST-phase Data layer of a train_val prototxt."""
    for layer in proto.read(train_val_path).layer:
        if layer.type == "Data" and any(r.phase == proto.caffe.TEST for r in layer.include):
            tp = layer.transform_param
            if tp.mean_file:
                mean_path = Path(base_dir) / tp.mean_file  # absolute stays absolute
                mean: np.ndarray | float = lmdb_io.read_mean(mean_path)
            elif tp.mean_value:
                mean = np.asarray(tp.mean_value, dtype=np.float32)[:, None, None]
            else:
                mean = 0.0
            return Transform(mean=mean, scale=tp.scale if tp.HasField("scale") else 1.0,
                             crop_size=tp.crop_size)
    raise UserError(f"{train_val_path} has no TEST-phase Data layer to take the input "
                    "transform from")


def read_lmdb(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """All (images N x C x H x W uint8, labels N) of a Datum LMDB, in key order."""
    decoded = [lmdb_io.decode_datum(value) for _, value in lmdb_io.read_lmdb(path)]
    if not decoded:
        raise UserError(f"LMDB {path} is empty")
    images, labels = zip(*decoded)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def branch_probabilities(net, images: np.ndarray, transform: Transform,
                         batch_size: int = 64) -> tuple[dict[int, np.ndarray], float]:
    """Per-branch softmax outputs from one forward pass per batch, and the largest difference
    between the deploy net's fused `prob` and the sum of the branches it reports."""
    branches = {b: blob for b, blob in BRANCH_BLOBS.items() if blob in net.blobs}
    out: dict[int, list[np.ndarray]] = {b: [] for b in branches}
    max_diff = 0.0
    for start in range(0, len(images), batch_size):
        x = transform(images[start:start + batch_size])
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        net.forward()
        for b, blob in branches.items():
            out[b].append(net.blobs[blob].data.copy())
        if FUSED_BLOB in net.blobs:
            summed = sum(net.blobs[blob].data for blob in branches.values())
            max_diff = max(max_diff, float(np.abs(net.blobs[FUSED_BLOB].data - summed).max()))
    return {b: np.concatenate(v) for b, v in out.items()}, max_diff


def evaluate(run_dir: str | Path, data_dir: str | Path = "data", weights: str | Path | None = None,
             split: str = "test", gpus: Gpus = Gpus(), batch_size: int = 64) -> dict:
    """`make eval`: eval.json of RUN_DIR (newest snapshot unless `weights`) on DATA_DIR's split.

    Top level: the full fusion DRI_{1+2+3} (the paper's prediction): `mca`, `aca`, `per_class`,
    `confusion`; `combos` holds each Table 3(b) combination, `branches` each branch alone.
    """
    run = RunDir(run_dir).require(RunDir.deploy, RunDir.train_val)
    data = DataFolder(data_dir).require(split, mean=False)
    weights = run.weights(weights)
    caffe = caffe_env.use_device(gpus)
    net = caffe.Net(str(run.deploy), caffe.TEST, weights=str(weights))
    transform = test_transform(run.train_val, base_dir=run.path)
    images, labels = read_lmdb(data.lmdb(split))
    probs, max_diff = branch_probabilities(net, images, transform, batch_size)
    if max_diff > FUSED_TOLERANCE:
        raise AssertionError(f"deploy blob {FUSED_BLOB!r} differs from the sum of the branch "
                             f"probabilities by {max_diff:g}")
    combos = metrics.evaluate_combos(labels, probs)
    full = metrics.FULL_COMBO if metrics.FULL_COMBO in combos else list(combos)[-1]
    result = {
        "net": run.read_manifest().get("net", run.name),
        "weights": str(weights),
        "iteration": snapshot_iteration(weights) if "_iter_" in weights.name else None,
        "split": split,
        "data_dir": str(data.path.resolve()),
        "n": int(len(labels)),
        "classes": list(paper.CLASSES),
        "combo": full,
        **combos[full],
        "combos": {c: {"mca": s["mca"], "aca": s["aca"], "per_class": s["per_class"]}
                   for c, s in combos.items()},
        "branches": {str(b): {"mca": s["mca"], "aca": s["aca"]} for b, s in
                     ((b, metrics.scores(labels, p)) for b, p in sorted(probs.items()))},
        "fused_prob_max_abs_diff": max_diff,
        "paper": {"table3b_mca": paper.TABLE3B_MCA,
                  "table4": {m: {"mca": v[0], "aca": v[1]} for m, v in paper.TABLE4.items()}},
    }
    atomic.write_text(run.eval_json, json.dumps(result, indent=2) + "\n")
    return result
