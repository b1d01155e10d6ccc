"""What `make predict` writes into OUT (one folder per input), and the text of each file:

    predictions.csv   one row per cell: each branch's probabilities, the fused ones, the call
    specimens.csv     one row per specimen (where the cells have specimens)
    metrics.json      with ground truth (dri_hep2.model.prediction_metrics)
    predict.json      what ran, on what, how fast
    skipped.csv       what --skip-bad left out
"""
from __future__ import annotations

import csv
import io
import json

import numpy as np

from .. import atomic
from ..data.records import DataError
from ..folders import Folder, member
from .inputs import Cell


class PredictionFolder(Folder):
    predictions = member("predictions.csv")
    specimens = member("specimens.csv")
    metrics = member("metrics.json")
    summary = member("predict.json")
    skipped = member("skipped.csv")


def write(out, *, kept: list[Cell], probs: dict[int, np.ndarray], fused: np.ndarray,
          calls: np.ndarray, classes: tuple[str, ...], labels: np.ndarray | None,
          specimens: dict[str, dict], truth: np.ndarray | None, metrics: dict | None,
          skipped: list[DataError], summary: dict) -> None:
    """OUT's files, all at once (a folder staged beside it, then moved into place)."""
    with atomic.staged_path(out, is_dir=True) as tmp:
        staged = PredictionFolder(tmp)
        atomic.write_text(staged.predictions,
                          _predictions_csv(kept, probs, fused, calls, classes, labels))
        if specimens:
            atomic.write_text(staged.specimens, _specimens_csv(specimens, classes, truth))
        if metrics is not None:
            atomic.write_text(staged.metrics, json.dumps(metrics, indent=2) + "\n")
        if skipped:
            atomic.write_text(staged.skipped, _skipped_csv(skipped))
        atomic.write_text(staged.summary, json.dumps(summary, indent=2) + "\n")


def _csv_text(header: list[str], rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _fmt(p: float) -> str:
    return f"{p:.6f}"


def _predictions_csv(kept: list[Cell], probs, fused, calls, classes, labels) -> str:
    has_spec = any(c.specimen is not None for c in kept)
    header = ["id", "file"] + (["specimen"] if has_spec else []) \
        + (["label"] if labels is not None else [])
    for b in sorted(probs):
        header += [f"fc{b}_{c}" for c in classes]
    header += [f"fused_{c}" for c in classes] + ["fused_label", "fused_probability"]
    if labels is not None:
        header.append("correct")
    rows = []
    for k, cell in enumerate(kept):
        row = [cell.id, str(cell.file)] + ([cell.specimen or ""] if has_spec else []) \
            + ([classes[labels[k]]] if labels is not None else [])
        for b in sorted(probs):
            row += [_fmt(p) for p in probs[b][k]]
        row += [_fmt(p) for p in fused[k]] + [classes[calls[k]], _fmt(fused[k, calls[k]])]
        if labels is not None:
            row.append(int(calls[k] == labels[k]))
        rows.append(row)
    return _csv_text(header, rows)


def _specimens_csv(specimens: dict[str, dict], classes, truth: np.ndarray | None) -> str:
    """`truth`: each specimen's true class (specimens.specimen_truth), None without labels."""
    header = ["specimen", "cells"] + (["label"] if truth is not None else []) \
        + ["call", "call_probability", "votes"] + [f"mean_{c}" for c in classes]
    rows = []
    for k, (s, v) in enumerate(specimens.items()):
        rows.append([s, len(v["rows"])] + ([classes[truth[k]]] if truth is not None else [])
                    + [classes[v["call"]], _fmt(v["mean"][v["call"]]), f"{v['votes']:.4f}"]
                    + [_fmt(p) for p in v["mean"]])
    return _csv_text(header, rows)


def _skipped_csv(skipped: list[DataError]) -> str:
    return _csv_text(["file", "line", "reason"],
                     [[e.file, e.line or "", e.reason] for e in skipped])
