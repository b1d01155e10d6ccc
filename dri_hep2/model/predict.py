"""`make predict`: a trained run (or its ONNX export) applied to cell images.

    IMAGES (folder | I3A folder | CSV) ──read_inputs──▶ cells (file, id, label?, specimen?)
        ──cells.decode, cells.net_view──▶ 76x76 views, checked before anything is written
        ──Caffe or onnxruntime──▶ FC1, FC2, FC3 ──sum layer──▶ fused call per cell
        ──specimens──▶ one call per specimen
    OUT: predictions.csv, specimens.csv, metrics.json (with ground truth), predict.json,
         skipped.csv (--skip-bad)

A cell goes through the TEST-phase path of training: the decoder and resize of the LMDB build
(dri_hep2.data.cells) and the run's TEST transform (mean, scale). With ground truth the
metrics are those of `make eval` (dri_hep2.metrics). This module imports no pycaffe at import
time: the Caffe backend loads it when it is chosen, so BACKEND=onnx runs without Caffe.
"""
from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import atomic, ledger, paper
from ..experiment import metrics
from ..gpus import Gpus
from ..data import cells as cellio
from ..data import i3a
from ..data.folder import DataFolder
from ..errors import UserError
from .onnx_model import OnnxModel
from ..experiment.run import RunDir

BACKENDS = ("caffe", "onnx")
SPECIMEN_RULES = ("mean", "vote")


class Outputs:
    """The names of what `make predict` writes into OUT (one folder per input)."""
    predictions = "predictions.csv"
    specimens = "specimens.csv"
    metrics = "metrics.json"
    summary = "predict.json"
    skipped = "skipped.csv"


# --- inputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    id: str
    file: Path
    label: str | None = None          # class name as given (mapped to the model's order later)
    specimen: str | None = None
    line: int | None = None           # CSV line, for messages


@dataclass
class Inputs:
    kind: str                  # "folder", "csv", "i3a-contest", "i3a-presplit", "file"
    cells: list[Cell]
    skipped: list[i3a.I3AError] = field(default_factory=list)
    splits: dict[str, str | None] = field(default_factory=dict)   # id -> split (pre-split)


def read_inputs(images: str | Path, *, split: str | None = None,
                data: DataFolder | None = None, skip_bad: bool = False) -> Inputs:
    """The cells named by IMAGES: a CSV listing files, an I3A folder (either layout) or a
    folder of images (one sub-folder per specimen, if any). `split` keeps the cells of one
    split of the run's data folder (I3A layouts only)."""
    images = Path(images)
    if images.is_file() and images.suffix.lower() == ".csv":
        inputs = _read_csv_list(images, skip_bad)
    elif images.is_dir() and ((images / i3a.CSV_NAME).is_file()
                              or any((images / s).is_dir() for s in i3a.SPLIT_FOLDERS)):
        inputs = _read_i3a(images, skip_bad)
    elif images.is_dir():
        inputs = _read_folder(images)
    elif images.is_file() and images.suffix.lower() in cellio.IMAGE_SUFFIXES:
        inputs = Inputs("file", [Cell(id=images.stem, file=images)])
    else:
        raise UserError(f"IMAGES={images}: no such folder, image or CSV file (give a folder of "
                        "cell images, an I3A folder, a CSV with a 'file' column, or one image)")
    if split:
        inputs.cells = _keep_split(inputs, images, split, data)
    if not inputs.cells:
        raise UserError(f"IMAGES={images}: no cell images found"
                        + (f" in split {split}" if split else ""))
    return inputs


def _read_folder(root: Path) -> Inputs:
    """Images at the top of `root` and in its sub-folders; a sub-folder names the specimen."""
    found = []
    for path in sorted(root.rglob("*")):
        if (path.suffix.lower() in cellio.IMAGE_SUFFIXES and path.is_file()
                and not path.stem.lower().endswith("_mask")):
            rel = path.relative_to(root)
            if len(rel.parts) > 2:
                continue    # deeper folders are not part of this layout
            found.append(Cell(id=str(rel.with_suffix("")), file=path,
                              specimen=rel.parts[0] if len(rel.parts) == 2 else None))
    return Inputs("folder", found)


def _read_i3a(root: Path, skip_bad: bool) -> Inputs:
    dataset = i3a.read_i3a(root, skip_bad=skip_bad)
    # i3a's labels index paper.CLASSES; carried as names and mapped to the model's own order.
    found = [Cell(id=r.id, file=r.image, label=paper.CLASSES[r.label], specimen=r.specimen)
             for r in dataset.records]
    return Inputs(f"i3a-{dataset.layout}", found, list(dataset.skipped),
                  {r.id: r.split for r in dataset.records})


# Column names of a CSV list (case-insensitive); the first of each tuple is documented.
_CSV_COLUMNS = {"file": ("file", "path", "image"), "id": ("id", "image id", "cell"),
                "label": ("label", "class", "image class"),
                "specimen": ("specimen", "specimen id")}


def _read_csv_list(path: Path, skip_bad: bool) -> Inputs:
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not numbered:
        raise i3a.I3AError("empty CSV (expected a header with a 'file' column)", path)
    header_line, header = numbered[0]
    names = [h.strip().lower() for h in header]
    cols = {key: next((names.index(a) for a in aliases if a in names), None)
            for key, aliases in _CSV_COLUMNS.items()}
    if cols["file"] is None:
        raise i3a.I3AError(f"no 'file' column in the header {','.join(header)!r} (columns: "
                           "file, and optionally id, label, specimen)", path, header_line)
    found, bad, seen = [], [], {}
    for line, row in numbered[1:]:
        def get(key):
            col = cols[key]
            return row[col].strip() if col is not None and col < len(row) else ""
        file = get("file")
        if not file:
            bad.append(i3a.I3AError("empty 'file' value", path, line))
            continue
        image = Path(file) if Path(file).is_absolute() else path.parent / file
        cell_id = get("id") or str(Path(file).with_suffix(""))
        if cell_id in seen:
            bad.append(i3a.I3AError(f"duplicate cell id {cell_id!r} (first on line "
                                    f"{seen[cell_id]})", path, line))
            continue
        seen[cell_id] = line
        found.append(Cell(cell_id, image, get("label") or None, get("specimen") or None, line))
    if bad and not skip_bad:
        raise bad[0]
    return Inputs("csv", found, bad)


def _keep_split(inputs: Inputs, images: Path, split: str, data: DataFolder | None) -> list[Cell]:
    if not inputs.kind.startswith("i3a"):
        raise UserError(f"--split needs an I3A folder as IMAGES, not a {inputs.kind} "
                        f"({images}): list the cells you want in a CSV instead")
    if data is not None and data.split_csv(split).is_file():
        listed = {i3a.normalise_id(line.split(",")[0]) for line in
                  data.split_csv(split).read_text().splitlines()[1:] if line.strip()}
        return [c for c in inputs.cells if c.id in listed]
    if inputs.kind == "i3a-presplit":
        return [c for c in inputs.cells if inputs.splits.get(c.id) == split]
    raise UserError(f"--split {split}: the run's data folder (with splits/{split}.csv) is not "
                    "available; give DATA_DIR=<the data folder the run was trained on> (--data-dir)")


# --- decoding ---------------------------------------------------------------------------------
def load_views(cells: list[Cell], *, stretch: bool, skip_bad: bool, progress: bool = True
               ) -> tuple[list[Cell], np.ndarray, list[i3a.I3AError]]:
    """Every cell decoded and resized as the LMDB build does; bad files stop here (or, with
    skip_bad, are listed) before anything is written."""
    kept, views, bad = [], [], []
    for cell in tqdm(cells, desc="read cells", unit="cell", disable=not progress,
                     mininterval=1.0):
        img = cellio.decode(cell.file)
        if img is None:
            reason = ("no such file" if not cell.file.is_file()
                      else "unreadable or truncated image")
            err = i3a.I3AError(reason, cell.file, cell.line)
            if not skip_bad:
                raise i3a.I3AError(f"{reason} (--skip-bad leaves such files out)", cell.file,
                                   cell.line)
            bad.append(err)
            continue
        kept.append(cell)
        views.append(cellio.net_view(img, stretch=stretch))
    size = views[0].shape if views else (0, 0)
    return kept, (np.stack(views) if views else np.empty((0, *size), np.uint8)), bad


def label_index(name: str, classes: tuple[str, ...], where: Cell) -> int:
    """A class name given with a cell -> its index in the model's class order."""
    lowered = [c.lower() for c in classes]
    if name.strip().lower() in lowered:
        return lowered.index(name.strip().lower())
    try:     # the spellings the I3A reader accepts ("Nuclear membrane", ...)
        canonical = paper.CLASSES[i3a.parse_label(name)]
        if canonical.lower() in lowered:
            return lowered.index(canonical.lower())
    except ValueError:
        pass
    raise i3a.I3AError(f"unknown class label {name!r} for {where.file.name} (the model's "
                       f"classes: {', '.join(classes)})", where.file, where.line)


# --- models -----------------------------------------------------------------------------------
class CaffeModel:
    """The run's deploy net and a snapshot in pycaffe, with the run's TEST transform."""

    backend = "caffe"

    def __init__(self, run: RunDir, weights: str | Path | None = None, gpus: Gpus = Gpus()):
        from ..engine import caffe_env
        from ..experiment import evaluate      # pycaffe: only for this backend
        run.require(RunDir.deploy, RunDir.train_val)
        self.weights = run.weights(weights)
        self.classes = run.class_names()
        self.stretch = run.input_stretch()
        caffe = caffe_env.use_device(gpus)
        self.net = caffe.Net(str(run.deploy), caffe.TEST, weights=str(self.weights))
        self.transform = evaluate.test_transform(run.train_val, base_dir=run.path)
        self._evaluate = evaluate

    def probabilities(self, views: np.ndarray) -> dict[int, np.ndarray]:
        outputs, max_diff = self._evaluate.branch_outputs(
            self.net, views[:, None], self.transform, batch_size=len(views))
        probs = outputs["prob"]
        if max_diff > self._evaluate.FUSED_TOLERANCE:
            raise AssertionError(f"deploy blob 'prob' differs from the sum of the branch "
                                 f"probabilities by {max_diff:g}")
        return probs


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


# --- specimens --------------------------------------------------------------------------------
def specimen_calls(specimens: list[str | None], fused: np.ndarray, rule: str
                   ) -> dict[str, dict]:
    """One call per specimen from its cells' fused probabilities (N x K, rows sum to 1).

    `mean` (ASSUMPTIONS.md U2): arg-max of the mean of the cells' fused probabilities.
    `vote`: the class most cells are called, ties to the higher mean probability.
    `votes` is the share of the specimen's cells whose own call equals the specimen's.
    """
    if rule not in SPECIMEN_RULES:
        raise UserError(f"specimen rule {rule!r}: one of {', '.join(SPECIMEN_RULES)}")
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(specimens):
        if s is not None:
            groups.setdefault(s, []).append(k)
    out = {}
    for s, rows in groups.items():
        probs = fused[rows]
        mean = probs.mean(axis=0)
        calls = probs.argmax(axis=1)
        counts = np.bincount(calls, minlength=fused.shape[1])
        if rule == "mean":
            call = int(mean.argmax())
        else:
            best = np.flatnonzero(counts == counts.max())
            call = int(best[np.argmax(mean[best])])
        out[s] = {"rows": rows, "call": call, "mean": mean,
                  "votes": float(counts[call] / len(rows))}
    return out


# --- the whole command ------------------------------------------------------------------------
def predict(images: str | Path, *, run_dir: str | Path | None = None,
            model_dir: str | Path | None = None, out: str | Path | None = None,
            backend: str = "caffe", weights: str | Path | None = None, gpus: Gpus = Gpus(),
            split: str | None = None, data_dir: str | Path | None = None,
            batch_size: int = 64, specimen_rule: str = ledger.SPECIMEN_RULE,
            skip_bad: bool = False, progress: bool = True) -> dict:
    """Predict every cell of IMAGES; write OUT's files atomically; return predict.json."""
    images = Path(images)
    run = RunDir(run_dir) if run_dir else None
    if run is not None and not run.path.is_dir():
        raise UserError(f"no run folder {run.path}: run 'make train RUN_DIR={run.path}' "
                        "first (or 'make demo')")
    if out is None:
        if run is None:
            raise UserError("give OUT=<folder> (without RUN_DIR there is no default)")
        # One folder per input, split and backend, so that runs side by side do not collide.
        name = (images.stem if images.is_file() else images.name) \
            + (f"-{split}" if split else "") + ("-onnx" if backend == "onnx" else "")
        out = run.predictions / name
    out = Path(out)
    if specimen_rule not in SPECIMEN_RULES:
        raise UserError(f"specimen rule {specimen_rule!r}: one of {', '.join(SPECIMEN_RULES)}")
    data = DataFolder(data_dir) if data_dir else (run.data_folder() if run else None)

    inputs = read_inputs(images, split=split, data=data, skip_bad=skip_bad)
    model = open_model(backend, run, model_dir=model_dir, weights=weights, gpus=gpus)
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
    parts: dict[int, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(views), batch_size), desc=f"predict ({model.backend})",
                      unit="batch", disable=not progress):
        for b, p in model.probabilities(views[start:start + batch_size]).items():
            parts.setdefault(b, []).append(p)
    probs = {b: np.concatenate(v).astype(np.float64) for b, v in parts.items()}
    t_net = time.perf_counter() - t0
    branches = sorted(probs)
    # The sum layer (N13, T2) over every branch; divided by their number (U1) so that the
    # written fused probabilities sum to 1. The arg-max is the sum's.
    fused = sum(probs[b] for b in branches) / len(branches)
    calls = fused.argmax(axis=1)

    spec_ids = [c.specimen for c in kept]
    specimens = (specimen_calls(spec_ids, fused, specimen_rule)
                 if any(s is not None for s in spec_ids) else {})
    summary = {
        "images": str(images.resolve()), "input": inputs.kind, "split": split,
        "backend": model.backend, "run_dir": str(run.path.resolve()) if run else None,
        "model": str(Path(model_dir).resolve()) if model_dir else None,
        "weights": str(model.weights), "classes": list(classes),
        "n": len(kept), "skipped": len(skipped), "specimens": len(specimens),
        "specimen_rule": specimen_rule if specimens else None, "batch_size": batch_size,
        "seconds": {"read": round(t_read, 3), "net": round(t_net, 3)},
        "cells_per_second": round(len(kept) / t_net, 2) if t_net > 0 else None,
    }
    result_metrics = None
    if labels is not None:
        result_metrics = _metrics(labels, probs, specimens, specimen_rule, classes)
        summary["mca"], summary["aca"] = result_metrics["mca"], result_metrics["aca"]
        if "specimen" in result_metrics:
            summary["specimen_mca"] = result_metrics["specimen"]["mca"]

    with atomic.staged_path(out, is_dir=True) as tmp:
        atomic.write_text(tmp / Outputs.predictions,
                          _predictions_csv(kept, probs, fused, calls, classes, labels))
        if specimens:
            atomic.write_text(tmp / Outputs.specimens,
                              _specimens_csv(specimens, classes, labels))
        if result_metrics is not None:
            atomic.write_text(tmp / Outputs.metrics, json.dumps(result_metrics, indent=2) + "\n")
        if skipped:
            atomic.write_text(tmp / Outputs.skipped, _skipped_csv(skipped))
        atomic.write_text(tmp / Outputs.summary, json.dumps(summary, indent=2) + "\n")
    summary["out"] = str(out)
    return summary


def _metrics(labels: np.ndarray, probs: dict[int, np.ndarray], specimens: dict[str, dict],
             rule: str, classes: tuple[str, ...]) -> dict:
    """The measures of `make eval` (dri_hep2.metrics): the fusions of Table 3(b) with their
    95 % intervals (the bootstrap resampling specimens where every cell has one, ledger T8),
    each branch, and for the specimens the same on one call per specimen."""
    groups = [None] * len(labels)
    for name, s in specimens.items():
        for row in s["rows"]:
            groups[row] = name
    interval_options = dict(intervals=True, groups=groups if all(groups) else None)
    combos = metrics.evaluate_combos(labels, probs, **interval_options)
    full = metrics.FULL_COMBO if metrics.FULL_COMBO in combos else list(combos)[-1]
    keep = ("mca", "aca", "per_class", "mca_ci", "aca_ci", "per_class_ci")
    out = {"n": int(len(labels)), "classes": list(classes), "combo": full, **combos[full],
           "combos": {c: {k: s[k] for k in keep} for c, s in combos.items()},
           "branches": {str(b): {k: v for k, v in metrics.scores(labels, p).items()
                                 if k in ("mca", "aca")} for b, p in sorted(probs.items())}}
    if specimens:
        truth, mixed = _specimen_truth(specimens, labels)
        # scores() takes the arg-max of what it is given: one-hot calls keep the rule's call.
        onehot = np.eye(len(classes))[[s["call"] for s in specimens.values()]]
        out["specimen"] = {"n": len(specimens), "rule": rule, "mixed_label_specimens": mixed,
                           **metrics.scores(truth, onehot)}
    return out


def _specimen_truth(specimens: dict[str, dict], labels: np.ndarray) -> tuple[np.ndarray, int]:
    """A specimen's true class: its cells' most common label (U3); how many were mixed."""
    truth, mixed = [], 0
    for s in specimens.values():
        counts = Counter(labels[s["rows"]].tolist())
        mixed += len(counts) > 1
        truth.append(max(sorted(counts), key=counts.__getitem__))
    return np.array(truth), mixed


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


def _specimens_csv(specimens: dict[str, dict], classes, labels) -> str:
    header = ["specimen", "cells"] + (["label"] if labels is not None else []) \
        + ["call", "call_probability", "votes"] + [f"mean_{c}" for c in classes]
    truth = _specimen_truth(specimens, labels)[0] if labels is not None else None
    rows = []
    for k, (s, v) in enumerate(specimens.items()):
        rows.append([s, len(v["rows"])] + ([classes[truth[k]]] if truth is not None else [])
                    + [classes[v["call"]], _fmt(v["mean"][v["call"]]), f"{v['votes']:.4f}"]
                    + [_fmt(p) for p in v["mean"]])
    return _csv_text(header, rows)


def _skipped_csv(skipped: list[i3a.I3AError]) -> str:
    return _csv_text(["file", "line", "reason"],
                     [[e.file, e.line or "", e.reason] for e in skipped])
