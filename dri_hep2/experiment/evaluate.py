"""Evaluate a trained run on the test split: the branch outputs FC1, FC2, FC3 from one forward
pass of the deploy net, the Table 3(b) fusions under both readings of the sum layer, MCA / ACA
(Eq. 3, Table 4) with 95 % intervals, and paired tests between the fusions
(dri_hep2.experiment.stats).

Input images get the transformation that the run's TEST-phase Data layer applies (its
`mean_file`, `mean_value`, `scale`, `crop_size`, read from RUN_DIR/train_val.prototxt), so the
deploy net sees what the validation net saw during training.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import atomic, ledger, paper
from ..engine import caffe_env
from . import metrics, stats
from ..gpus import Gpus
from ..data import lmdb_io
from ..data.cells import Transform
from ..data.folder import DataFolder
from ..errors import UserError
from ..net import proto
from .run import RunDir, snapshot_iteration

# The outputs each reading of the sum layer adds (section 2.1; ledger N13): the branches'
# softmax probabilities (ours, the deploy net's `prob`) or their raw classifier scores.
BRANCH_BLOBS = {"prob": {1: "loss1/prob", 2: "loss2/prob", 3: "loss3/prob"},
                "score": {1: "loss1/classifier", 2: "loss2/classifier", 3: "loss3/classifier"}}
FUSIONS = tuple(BRANCH_BLOBS)
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


def read_lmdb(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All (images N x C x H x W uint8, labels N, cell IDs N) of a Datum LMDB, in key order."""
    entries = list(lmdb_io.read_lmdb(path))
    if not entries:
        raise UserError(f"LMDB {path} is empty")
    images, labels = zip(*(lmdb_io.decode_datum(value) for _, value in entries))
    return (np.stack(images), np.asarray(labels, dtype=np.int64),
            [lmdb_io.key_name(key) for key, _ in entries])


def branch_outputs(net, images: np.ndarray, transform: Transform,
                   batch_size: int = 64) -> tuple[dict[str, dict[int, np.ndarray]], float]:
    """Per-branch outputs from one forward pass per batch: the softmax probabilities
    (`prob`) and the raw classifier scores (`score`) of FC1, FC2, FC3; and the largest
    difference between the deploy net's fused `prob` and the sum of the branches it reports."""
    blobs = {rule: {b: blob for b, blob in named.items() if blob in net.blobs}
             for rule, named in BRANCH_BLOBS.items()}
    out = {rule: {b: [] for b in named} for rule, named in blobs.items()}
    max_diff = 0.0
    for start in range(0, len(images), batch_size):
        x = transform(images[start:start + batch_size])
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        net.forward()
        for rule, named in blobs.items():
            for b, blob in named.items():
                out[rule][b].append(net.blobs[blob].data.copy())
        if FUSED_BLOB in net.blobs:
            summed = sum(net.blobs[blob].data for blob in blobs["prob"].values())
            max_diff = max(max_diff, float(np.abs(net.blobs[FUSED_BLOB].data - summed).max()))
    return ({rule: {b: np.concatenate(v) for b, v in per.items()} for rule, per in out.items()},
            max_diff)


def require_fused_sum(deploy: Path, max_diff: float) -> None:
    """Refuse a deploy net whose fused `prob` is not the sum of its branches (`max_diff` from
    `branch_outputs`): it is not the net the run trained, and its figures would not be the
    paper's fusion. A file given by hand can be so, hence an error naming it, not an assert."""
    if max_diff > FUSED_TOLERANCE:
        raise UserError(f"{deploy}: blob {FUSED_BLOB!r} differs from the sum of the branch "
                        f"probabilities by {max_diff:g}; it is not the deploy net this toolkit "
                        "writes (make train writes it)")


def test_specimens(data: DataFolder, split: str, ids: list[str]) -> list[str] | None:
    """The specimen of each evaluated cell, from the data folder's split CSV; None when any is
    unknown (then the MCA bootstrap resamples cells, ledger T8)."""
    if not data.split_csv(split).is_file():
        return None
    by_id = {row["id"]: row["specimen"] for row in data.read_split(split)}
    specimens = [by_id.get(cell_id) for cell_id in ids]
    return specimens if all(specimens) else None


def evaluate(run_dir: str | Path, data_dir: str | Path = "data", weights: str | Path | None = None,
             split: str = "test", gpus: Gpus = Gpus(), batch_size: int = 64,
             resamples: int = ledger.BOOTSTRAP_RESAMPLES) -> dict:
    """`make eval`: eval.json of RUN_DIR (newest snapshot unless `weights`) on DATA_DIR's split.

    Top level: the full fusion DRI_{1+2+3} (the paper's prediction) under our reading of the
    sum layer (softmax probabilities, ledger N13): `mca`, `aca`, `per_class`, `confusion` and
    their 95 % intervals; `combos` holds each Table 3(b) combination, `score_combos` the same
    with raw classifier scores summed (the other reading), `mcnemar` the paired tests between
    them, `branches` each branch alone, `cells` the per-cell predictions (for paired tests
    between runs).
    """
    run = RunDir(run_dir).require(RunDir.deploy, RunDir.train_val)
    data = DataFolder(data_dir).require(split, mean=False)
    classes = run.classes()
    if data.manifest.is_file() and data.classes() != classes:
        raise UserError(f"{run.path} was trained on the classes {', '.join(classes.names)}; "
                        f"DATA_DIR={data.path} holds {', '.join(data.classes().names)}: "
                        "evaluate on the data folder it was trained on")
    weights = run.weights(weights)
    caffe = caffe_env.use_device(gpus)
    net = caffe.Net(str(run.deploy), caffe.TEST, weights=str(weights))
    transform = test_transform(run.train_val, base_dir=run.path)
    images, labels, ids = read_lmdb(data.lmdb(split))
    specimens = test_specimens(data, split, ids)
    outputs, max_diff = branch_outputs(net, images, transform, batch_size)
    require_fused_sum(run.deploy, max_diff)
    interval_options = dict(intervals=True, groups=specimens, resamples=resamples,
                            classes=classes.names)
    fusions = {rule: metrics.evaluate_combos(labels, outputs[rule], **interval_options)
               for rule in FUSIONS}
    combos = fusions["prob"]
    full = metrics.FULL_COMBO if metrics.FULL_COMBO in combos else list(combos)[-1]
    predicted = {rule: {c: np.argmax(metrics.fuse(outputs[rule], c), axis=1) for c in combos}
                 for rule in FUSIONS}
    result = {
        "net": run.read_manifest().get("net", run.name),
        "weights": str(weights),
        "iteration": snapshot_iteration(weights) if "_iter_" in weights.name else None,
        "split": split,
        "data_dir": str(data.path.resolve()),
        "n": int(len(labels)),
        "classes": list(classes.names),
        "abbrev": list(classes.abbrev),
        "fusion": "prob",
        "combo": full,
        **combos[full],
        "combos": {c: _summary(s) for c, s in combos.items()},
        "score_combos": {c: _summary(s) for c, s in fusions["score"].items()},
        "mcnemar": {
            "against": full,
            "prob": metrics.paired_tests(labels, predicted["prob"], full),
            "score": metrics.paired_tests(labels, predicted["score"], full),
            "prob_vs_score": {c: stats.mcnemar(predicted["prob"][c] == labels,
                                               predicted["score"][c] == labels)
                              for c in combos},
        },
        "branches": {str(b): _summary(metrics.scores(labels, p, **interval_options))
                     for b, p in sorted(outputs["prob"].items())},
        "intervals": {"level": 0.95, "aca": "Wilson score", "per_class": "Wilson score",
                      "mca": "stratified bootstrap percentile, resampling "
                             + ("specimens" if specimens else "cells") + " within each class",
                      "resamples": resamples, "seed": ledger.RANDOM_SEED,
                      "specimens": len(set(specimens)) if specimens else None},
        "cells": {"ids": ids, "labels": labels.tolist(), "specimens": specimens,
                  "predicted": {rule: {c: p.tolist() for c, p in per.items()}
                                for rule, per in predicted.items()}},
        "fused_prob_max_abs_diff": max_diff,
        "paper": {"table3b_mca": paper.TABLE3B_MCA,
                  "table4": {m: {"mca": v[0], "aca": v[1]} for m, v in paper.TABLE4.items()}},
    }
    atomic.write_text(run.eval_json, json.dumps(result, indent=2) + "\n")
    return result


def _summary(s: dict) -> dict:
    """A combination's figures without its confusion matrix (the full fusion keeps that)."""
    return {k: v for k, v in s.items() if k != "confusion"}
