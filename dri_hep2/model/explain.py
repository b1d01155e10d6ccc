"""`make explain`: what the net looks at, from Caffe's own backward pass on the deploy net.

For test cells of the run, correctly and wrongly classified, per class:

- the gradient of the fused prediction (the sum layer's output `prob` for the predicted
  class) with respect to the net input, by `net.backward` on a copy of the deploy
  NetParameter with `force_backward: true` (BatchNorm uses its stored statistics, Dropout is
  the identity, as in the forward pass of `make eval`); the map is its absolute value;
- Grad-CAM on a block's output (default: the last block, ledger U6): the block's channels
  weighted by the spatial mean of the same gradient at that blob, summed, negatives cut,
  resized to the input.

Writes RUN_DIR/explain/<class>.png (rows: cells; columns: cell, gradient map, its overlay,
Grad-CAM, its overlay) and explain.json (which cells, layer, weights).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from .. import atomic, ledger
from ..engine import caffe_env
from ..experiment import evaluate  # noqa: E402
from ..gpus import Gpus  # noqa: E402
from ..data.folder import DataFolder  # noqa: E402
from ..errors import UserError  # noqa: E402
from ..net import proto  # noqa: E402
from ..experiment.run import RunDir  # noqa: E402

def montage_name(class_name: str) -> str:
    return f"{class_name}.png"


def last_block(net_param) -> str:
    """The output blob of the net's last block: the last Concat whose top is `<block>/output`
    (every variant names its DRI or Inception block outputs so)."""
    tops = [lyr.top[0] for lyr in net_param.layer
            if lyr.type == "Concat" and lyr.top[0].endswith("/output")]
    if not tops:
        raise UserError("no '<block>/output' blob in the deploy net: give LAYER=<blob name>")
    return tops[-1]


def _check_layer(net_param, net, layer: str, source: Path) -> None:
    if layer not in net.blobs:
        raise UserError(f"LAYER={layer}: no such blob in {source} (block outputs: "
                        + ", ".join(lyr.top[0] for lyr in net_param.layer
                                    if lyr.top and lyr.top[0].endswith("/output")) + ")")
    for lyr in net_param.layer:
        if layer in lyr.bottom and layer in lyr.top:
            raise UserError(f"LAYER={layer}: layer {lyr.name!r} overwrites it in place, so its "
                            "values and gradient are gone after the pass; pick another blob")
    if len(net.blobs[layer].data.shape) != 4:
        raise UserError(f"LAYER={layer}: Grad-CAM needs a N x C x H x W blob, this one is "
                        f"{net.blobs[layer].data.shape}")


def saliency(net, x: np.ndarray, layer: str, target: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One forward and one backward pass of a batch of transformed inputs (N x 1 x H x W).

    Returns (fused `prob`, the gradient of prob[target] w.r.t. the input, Grad-CAM at `layer`
    resized to the input and scaled to 0..1 per cell, the gradient at `layer`). `target`
    defaults to each cell's fused arg-max.
    """
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data[...] = x
    net.forward()
    prob = net.blobs[evaluate.FUSED_BLOB].data.copy()
    target = prob.argmax(axis=1) if target is None else np.asarray(target)
    seed = np.zeros_like(prob)
    seed[np.arange(len(prob)), target] = 1.0
    # Samples are independent at test time, so one batched backward gives each its own
    # gradient.
    net.backward(**{evaluate.FUSED_BLOB: seed})
    grad = net.blobs["data"].diff.copy()
    acts = net.blobs[layer].data
    layer_grad = net.blobs[layer].diff.copy()
    weights = layer_grad.mean(axis=(2, 3), keepdims=True)
    cams = np.maximum((weights * acts).sum(axis=1), 0)
    h, w = x.shape[-2:]
    resized = np.stack([cv2.resize(c.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                        for c in cams])
    peak = resized.reshape(len(resized), -1).max(axis=1)[:, None, None]
    resized = np.where(peak > 0, resized / np.where(peak > 0, peak, 1), 0)
    return prob, grad, resized, layer_grad


def _normalise(m: np.ndarray) -> np.ndarray:
    """0..1 by the 99th percentile, so one extreme pixel does not flatten the map."""
    top = np.percentile(m, 99)
    return np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)


def _choose(labels, fused, n: int) -> dict[int, dict[str, list[int]]]:
    """Per class: the `n` most confident correct and the `n` most confident wrong cells."""
    calls = fused.argmax(axis=1)
    conf = fused.max(axis=1)
    chosen = {}
    for c in range(fused.shape[1]):
        mine = np.flatnonzero(labels == c)
        ok = mine[calls[mine] == c]
        bad = mine[calls[mine] != c]
        chosen[c] = {"correct": ok[np.argsort(-conf[ok], kind="stable")][:n].tolist(),
                     "wrong": bad[np.argsort(-conf[bad], kind="stable")][:n].tolist()}
    return chosen


def _montage(path: Path, class_name: str, rows: list[dict], classes, layer: str) -> None:
    # Column 0 (the cell, grey levels stretched for display) carries each row's call.
    cols = ("cell", "|d prob / d input|", "overlay", f"Grad-CAM {layer}", "overlay")
    n = max(len(rows), 1)
    fig, axes = plt.subplots(n, len(cols), figsize=(1.7 * len(cols), 1.8 * n + 0.4),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    if not rows:
        axes[0, 0].text(0, 0.5, f"no test cells of {class_name}", fontsize=9)
    for r, row in enumerate(rows):
        cell = row["image"].astype(np.float32)
        cell = (cell - cell.min()) / max(float(np.ptp(cell)), 1.0)
        axes[r, 0].imshow(cell, cmap="gray", vmin=0, vmax=1)
        axes[r, 1].imshow(row["grad"], cmap="hot", vmin=0, vmax=1)
        axes[r, 2].imshow(cell, cmap="gray", vmin=0, vmax=1)
        axes[r, 2].imshow(row["grad"], cmap="hot", alpha=0.5, vmin=0, vmax=1)
        axes[r, 3].imshow(row["cam"], cmap="jet", vmin=0, vmax=1)
        axes[r, 4].imshow(cell, cmap="gray", vmin=0, vmax=1)
        axes[r, 4].imshow(row["cam"], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        label = f"{row['outcome']}: called {classes[row['call']]} {row['prob']:.2f}"
        axes[r, 0].set_title(label, fontsize=7, loc="left",
                             color="green" if row["outcome"] == "correct" else "red")
    for k, title in enumerate(cols[1:], 1):
        axes[0, k].set_title(title, fontsize=7)
    fig.suptitle(f"{class_name}: test cells, correctly and wrongly called (fused DRI)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))   # room for the title
    with atomic.staged_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def explain(run_dir: str | Path, *, data_dir: str | Path | None = None,
            weights: str | Path | None = None, layer: str | None = None,
            cells: int = ledger.EXPLAIN_CELLS, split: str = "test", gpus: Gpus = Gpus(),
            batch_size: int = 32) -> dict:
    """`make explain`: RUN_DIR/explain/<class>.png per class and explain.json."""
    run = RunDir(run_dir).require(RunDir.deploy, RunDir.train_val)
    weights = run.weights(weights)
    data = DataFolder(data_dir) if data_dir else run.data_folder()
    if data is None:
        raise UserError(f"the data folder of {run.path} is not there: give "
                        "DATA_DIR=<the data folder it was trained on>")
    data.require(split, mean=False)
    caffe_env.use_device(gpus)          # the mode for the net loaded next
    deploy = proto.read(run.deploy)
    deploy.force_backward = True      # gradients down to the input, which has no parameters
    net = proto.load(deploy, "TEST", weights)
    layer = layer or last_block(deploy)
    _check_layer(deploy, net, layer, run.deploy)
    classes = run.class_names()
    transform = evaluate.test_transform(run.train_val, base_dir=run.path)
    images, labels, _ = evaluate.read_lmdb(data.lmdb(split))
    outputs, _ = evaluate.branch_outputs(net, images, transform, batch_size)
    probs = outputs["prob"]
    fused = sum(probs.values()) / len(probs)
    chosen = _choose(labels, fused, cells)
    order = [k for c in chosen for o in ("correct", "wrong") for k in chosen[c][o]]
    grads, cams = {}, {}
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        _, g, cam, _ = saliency(net, transform(images[idx]), layer)
        for k, i in enumerate(idx):
            grads[i], cams[i] = _normalise(np.abs(g[k, 0])), cam[k]
    summary = {"weights": str(weights), "layer": layer, "split": split,
               "target": "fused prob of the predicted class (sum layer), ledger U6",
               "cells_per_group": cells, "classes": {}}
    folder = run.explain
    with atomic.staged_path(folder, is_dir=True) as tmp:
        for c, groups in chosen.items():
            rows = [{"image": images[i, 0], "grad": grads[i], "cam": cams[i], "outcome": o,
                     "call": int(fused[i].argmax()), "prob": float(fused[i].max())}
                    for o in ("correct", "wrong") for i in groups[o]]
            _montage(tmp / montage_name(classes[c]), classes[c], rows, classes, layer)
            summary["classes"][classes[c]] = {
                "montage": montage_name(classes[c]),
                "test_cells": int((labels == c).sum()),
                "wrong_cells": int(((labels == c) & (fused.argmax(1) != c)).sum()),
                **{o: [{"index": i, "call": classes[int(fused[i].argmax())],
                        "probability": round(float(fused[i].max()), 6)} for i in groups[o]]
                   for o in ("correct", "wrong")}}
        atomic.write_text(tmp / Path(RunDir.explain_summary).name,
                          json.dumps(summary, indent=2) + "\n")
    summary["folder"] = str(folder)
    return summary
