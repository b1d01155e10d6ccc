"""`make predict`: a trained run (or its ONNX export) applied to cell images.

    IMAGES (folder | I3A folder | CSV) ──inputs.read_inputs──▶ cells (file, id, label?,
        specimen?) ──inputs.load_views──▶ 76x76 views, checked before anything is written
        ──backends (Caffe or onnxruntime)──▶ FC1, FC2, FC3 ──sum layer──▶ fused call per cell
        ──specimens──▶ one call per specimen
    OUT (prediction_folder): predictions.csv, specimens.csv, metrics.json (with ground truth,
        prediction_metrics), predict.json, skipped.csv (--skip-bad)

A cell goes through the TEST-phase path of training: the decoder and resize of the LMDB build
(dri_hep2.data.cells) and the run's TEST transform (mean, scale). With ground truth the
metrics are those of `make eval` (dri_hep2.experiment.metrics). None of these modules imports
pycaffe at import time: the Caffe backend loads it when it is chosen, so BACKEND=onnx runs
without Caffe.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import ledger
from ..data.folder import DataFolder
from ..errors import UserError
from ..experiment.run import RunDir
from ..gpus import Gpus
from . import backends, prediction_folder
from .inputs import label_index, load_views, read_inputs
from .prediction_metrics import prediction_metrics
from .specimens import check_rule, specimen_calls, specimen_truth


def _out_folder(run: RunDir | None, images: Path, split: str | None, backend: str) -> Path:
    """OUT's default: RUN_DIR/predict/<input>[-<split>][-onnx], one folder per input, split
    and backend, so that runs side by side do not collide."""
    if run is None:
        raise UserError("give OUT=<folder> (without RUN_DIR there is no default)")
    name = (images.stem if images.is_file() else images.name) \
        + (f"-{split}" if split else "") + ("-onnx" if backend == "onnx" else "")
    return run.predictions / name


def predict(images: str | Path, *, run_dir: str | Path | None = None,
            model_dir: str | Path | None = None, out: str | Path | None = None,
            backend: str = "caffe", weights: str | Path | None = None, gpus: Gpus = Gpus(),
            split: str | None = None, data_dir: str | Path | None = None,
            batch_size: int = backends.DEFAULT_BATCH, specimen_rule: str = ledger.SPECIMEN_RULE,
            skip_bad: bool = False, progress: bool = True) -> dict:
    """Predict every cell of IMAGES; write OUT's files atomically; return predict.json."""
    images = Path(images)
    run = RunDir(run_dir) if run_dir else None
    if run is not None and not run.path.is_dir():
        raise UserError(f"no run folder {run.path}: run 'make train RUN_DIR={run.path}' "
                        "first (or 'make demo')")
    out = Path(out) if out is not None else _out_folder(run, images, split, backend)
    check_rule(specimen_rule)      # before the cells are read and the net is loaded
    batch_size = backends.parse_batch(batch_size)
    data = DataFolder(data_dir) if data_dir else (run.data_folder() if run else None)

    inputs = read_inputs(images, split=split, data=data, skip_bad=skip_bad)
    model = backends.open_model(backend, run, model_dir=model_dir, weights=weights, gpus=gpus)
    classes = model.classes
    t0 = time.perf_counter()
    kept, views, bad = load_views(inputs.cells, stretch=model.stretch, skip_bad=skip_bad,
                                  progress=progress)
    skipped = inputs.skipped + bad
    known = [c for c in kept if c.label is not None]
    labels = None
    if known and len(known) == len(kept):
        labels = np.array([label_index(c.label, classes, c) for c in kept])
    elif known:
        raise UserError(f"{images}: {len(known)} of {len(kept)} cells have a label: give "
                        "labels for all cells or for none")
    if not kept:
        raise UserError(f"{images}: every cell was skipped ({len(skipped)}), nothing to predict")
    t_read = time.perf_counter() - t0

    t0 = time.perf_counter()
    probs = backends.branch_probabilities(model, views, batch_size, progress)
    t_net = time.perf_counter() - t0
    branches = sorted(probs)
    # The sum layer (N13, T2) over every branch; divided by their number (U1) so that the
    # written fused probabilities sum to 1. The arg-max is the sum's.
    fused = sum(probs[b] for b in branches) / len(branches)
    calls = fused.argmax(axis=1)

    spec_ids = [c.specimen for c in kept]
    specimens = (specimen_calls(spec_ids, fused, specimen_rule)
                 if any(s is not None for s in spec_ids) else {})
    truth = specimen_truth(specimens, labels) if labels is not None and specimens else None
    summary = {
        "images": str(images.resolve()), "input": inputs.kind, "split": split,
        "backend": model.backend, "run_dir": str(run.path.resolve()) if run else None,
        "model": str(Path(model_dir).resolve()) if model_dir else None,
        "weights": str(model.weights), "classes": list(classes),
        "n": len(kept), "skipped": len(skipped), "specimens": len(specimens),
        "specimen_rule": specimen_rule if specimens else None, "batch_size": batch_size,
        "seconds": {"read": round(t_read, 3), "net": round(t_net, 3)},
        **({"caffe_folding": model.folding} if hasattr(model, "folding") else {}),
        "cells_per_second": round(len(kept) / t_net, 2) if t_net > 0 else None,
    }
    result_metrics = None
    if labels is not None:
        result_metrics = prediction_metrics(labels, probs, specimens, specimen_rule, classes,
                                            truth)
        summary["mca"], summary["aca"] = result_metrics["mca"], result_metrics["aca"]
        if "specimen" in result_metrics:
            summary["specimen_mca"] = result_metrics["specimen"]["mca"]

    prediction_folder.write(out, kept=kept, probs=probs, fused=fused, calls=calls,
                            classes=classes, labels=labels, specimens=specimens,
                            truth=truth[0] if truth else None, metrics=result_metrics,
                            skipped=skipped, summary=summary)
    summary["out"] = str(out)
    return summary
