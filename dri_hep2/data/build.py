"""`make data`: a folder of cells (I3A, or another layout of dri_hep2.data.formats) -> a data
folder (dri_hep2.data.folder: LMDBs, mean, splits, manifest; docs/data.md), following the
paper's protocol (section 3.2, Table 2) or a cross-validation fold of it.

Everything is checked before anything is written; outputs are built in temporary folders and
renamed into place; a rerun with the same inputs and parameters does nothing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import mmap
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import atomic, ledger, paper
from ..classes import ClassList
from ..errors import UserError
from . import augment, formats, i3a, lmdb_io, split
from .folder import DataFolder, write_split_csvs
from .records import CellSet, DataError, ReaderOptions

# Bump when the outputs change for the same inputs and parameters. 2: split CSVs carry the
# specimen ID (for specimen-level bootstrap intervals).
FORMAT = 2
_CHUNK = 64             # cells per worker task


@dataclass(frozen=True)
class BuildParams:
    """Everything besides the input files that decides the outputs (hashed into build_hash)."""
    protocol: str = "cell"
    seed: int = ledger.RANDOM_SEED
    rotation_steps_deg: tuple[int, ...] = tuple(paper.rotation_step_deg(c)
                                                for c in range(paper.NUM_CLASSES))
    border: str = "reflect101"
    stretch: bool = False
    skip_bad: bool = False
    folds: int | None = None        # kfold / loso: how many folds (resolved) ...
    fold: int | None = None         # ... and which one is the test part (1-based)
    reader: dict | None = None      # ReaderOptions.manifest: the format and its knobs

    def check(self, num_classes: int = paper.NUM_CLASSES) -> None:
        """Refuse bad parameters before any work."""
        if len(self.rotation_steps_deg) != num_classes:
            raise UserError(f"{len(self.rotation_steps_deg)} rotation steps given for "
                            f"{num_classes} classes: give one per class")
        for label in range(num_classes):
            augment.rotation_angles(label, self.rotation_steps_deg)
        if self.border not in augment.BORDERS:
            raise UserError(f"unknown border {self.border!r} ({', '.join(augment.BORDERS)})")

    def manifest(self) -> dict:
        out = {"protocol": self.protocol, "seed": self.seed,
               "rotation_steps_deg": list(self.rotation_steps_deg), "border": self.border,
               "stretch": self.stretch, "input_size": paper.INPUT_SIZE,
               "rotation_interpolation": "linear", "resize_interpolation": "area/linear",
               "skip_bad": self.skip_bad, "format": FORMAT}
        # Only what a build of another data set or a fold adds: an I3A build keeps the
        # parameters (and build hash) it had before other layouts were read.
        if self.reader and self.reader.get("format") != "i3a":
            out["reader"] = self.reader
        if self.folds is not None:
            out.update(folds=self.folds, fold=self.fold)
        return out


def build_dataset(i3a_dir: str | Path, data_dir: str | Path = "data", *,
                  protocol: str = "cell", seed: int = ledger.RANDOM_SEED, skip_bad: bool = False,
                  steps: tuple[int, ...] | None = None, border: str = "reflect101",
                  stretch: bool = False, workers: int | None = None, progress: bool = True,
                  force: bool = False, format: str = "auto",
                  reader: ReaderOptions = ReaderOptions(),
                  folds: int | None = None, fold: int = 1,
                  step: int = paper.ROTATION_STEP_DEG,
                  golgi_step: int = paper.GOLGI_ROTATION_STEP_DEG, announce=print) -> dict:
    """Build the data folder and return its manifest (the existing one if already up to date).

    `i3a_dir`: the folder of cells, read as `format` (`auto`: detected and announced).
    `steps`: the rotation step of every class; None: `augment.class_steps` from `step` and
    `golgi_step`. `protocol` kfold / loso: fold `fold` of `folds` (None: the default count).
    """
    start = time.perf_counter()
    data = DataFolder(data_dir)
    workers = workers or os.cpu_count() or 1
    if border not in augment.BORDERS:
        raise UserError(f"unknown border {border!r} ({', '.join(augment.BORDERS)})")
    if protocol not in split.PROTOCOLS:
        raise UserError(f"unknown split protocol {protocol!r} ({', '.join(split.PROTOCOLS)})")
    dataset = formats.read_cells(i3a_dir, format, skip_bad=skip_bad, options=reader,
                                 announce=announce)
    classes = dataset.classes
    if steps is None:
        steps = augment.class_steps(classes, _counts(dataset.records, classes), step,
                                    golgi_step)
    k = split.fold_count(dataset.records, protocol, folds) \
        if protocol in split.FOLD_PROTOCOLS else None
    params = BuildParams(protocol, seed, tuple(steps), border, stretch, skip_bad, k,
                         fold if k else None, reader.manifest(dataset.format))
    params.check(len(classes))
    inputs = _hash_inputs(Path(i3a_dir), dataset)
    build_hash = hashlib.sha256(json.dumps([inputs["sha256"], params.manifest()],
                                           sort_keys=True).encode()).hexdigest()
    old = data.read_manifest()
    if old and old.get("build_hash") == build_hash and not force:
        print(f"{data.path} is up to date with {i3a_dir} (same inputs and parameters): "
              "nothing to do")
        return old

    records, images, skipped = _decode(dataset, skip_bad, workers, progress)
    splits = split.split_records(records, seed=seed, protocol=protocol, folds=folds, fold=fold)
    empty = [name for name in split.SPLITS if not splits[name]]
    if empty:
        # Caffe's solver cannot validate on nothing, and an empty test part measures nothing.
        raise UserError(f"the {empty[0]} part of {i3a_dir} under protocol {protocol}"
                        + (f" (fold {fold} of {k})" if k else "") + " would be empty: too few "
                        "cells or specimens for it; use fewer folds (K=) or another protocol")
    _remove_stale_temporaries(data)
    # The outputs are about to change: drop the manifest that certifies the old ones.
    data.manifest.unlink(missing_ok=True)
    summary, mean = {}, None
    with atomic.staged_path(data.lmdb_dir, is_dir=True) as lmdb_tmp:
        for s, name in enumerate(split.SPLITS):
            summary[name], view_sum = _write_split_lmdb(
                lmdb_tmp / name, name, splits[name], images, [seed, s], params, workers,
                progress, len(classes))
            if name == "train":
                mean = view_sum / max(summary[name]["total"], 1)
        atomic.write_bytes(lmdb_tmp / Path(DataFolder.mean).relative_to(DataFolder.lmdb_dir),
                           lmdb_io.mean_blob(mean[None]))
    with atomic.staged_path(data.splits_dir, is_dir=True) as splits_tmp:
        write_split_csvs(splits, splits_tmp, classes)
    _write_skipped(data, skipped)
    manifest = {
        "format": FORMAT,
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_hash": build_hash,
        "inputs": inputs,
        "parameters": params.manifest(),
        "class_order": list(classes.names),
        "classes": classes.manifest(),
        "splits": summary,
        "lmdb": {name: f"{DataFolder.lmdb_dir}/{name}" for name in split.SPLITS},
        "mean": DataFolder.mean,
        "skipped": len(skipped),
        "build_seconds": round(time.perf_counter() - start, 2),
        "workers": workers,
    }
    atomic.write_text(data.manifest, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _counts(records, classes: ClassList) -> list[int]:
    return [sum(r.label == c for r in records) for c in range(len(classes))]


def _decode(dataset: CellSet, skip_bad: bool, workers: int, progress: bool):
    """Decode every image before anything is written: bad PNGs stop the run here. Returns the
    usable records, {id: image} and the skipped items (reader's and decoder's)."""
    records = dataset.records
    with _pool(workers) as pool:
        decoded = list(tqdm(pool.imap(i3a.load_images, _chunks(records, _CHUNK * 4)),
                            total=-(-len(records) // (_CHUNK * 4)), desc="read cells",
                            unit="x256", disable=not progress))
    images = [img for part, _ in decoded for img in part]
    errors = [err for _, errs in decoded for err in errs]
    if errors and not skip_bad:
        raise DataError(errors[0].reason + (f" (and {len(errors) - 1} more unreadable)"
                                            if len(errors) > 1 else ""), errors[0].file)
    keep = [k for k, img in enumerate(images) if img is not None]
    return ([records[k] for k in keep], {records[k].id: images[k] for k in keep},
            dataset.skipped + errors)


def _write_split_lmdb(path: Path, name: str, recs: list, images: dict, key_seed: list[int],
                      params: BuildParams, workers: int, progress: bool,
                      num_classes: int = paper.NUM_CLASSES) -> tuple[dict, np.ndarray]:
    """Augment (training only), shuffle and write one split's LMDB; returns its summary and the
    sum of its views (for the mean image)."""
    size = paper.INPUT_SIZE
    train = name == "train"
    angles = [augment.rotation_angles(r.label, params.rotation_steps_deg) if train else [0]
              for r in recs]
    names = [f"{r.id}_r{a:03d}" if train else r.id for r, angs in zip(recs, angles) for a in angs]
    labels = [r.label for r, angs in zip(recs, angles) for _ in angs]
    keys = lmdb_io.shuffled_keys(names, key_seed)
    starts = np.cumsum([0] + [len(a) for a in angles]).tolist()
    # Workers write their views straight into memory shared with this process (an anonymous
    # shared mapping made before the fork) instead of pickling them back.
    views = np.frombuffer(mmap.mmap(-1, max(len(names), 1) * size * size), np.uint8,
                          len(names) * size * size).reshape(-1, size, size)
    jobs = [([r.id for r in part], [r.label for r in part], starts[j * _CHUNK], train)
            for j, part in enumerate(_chunks(recs, _CHUNK))]
    view_sum = np.zeros((size, size), np.float64)
    with _pool(workers, _Shared(images, views, params)) as pool:
        for part_sum in tqdm(pool.imap_unordered(_views, jobs), total=len(jobs),
                             desc=f"augment {name}", unit=f"x{_CHUNK}", disable=not progress):
            view_sum += part_sum     # integer-valued: exact in any order
    # Written in key order (the order Caffe reads), so LMDB can append.
    framing = [lmdb_io.datum_framing((ledger.INPUT_CHANNELS, size, size), c)
               for c in range(num_classes)]
    order = sorted(range(len(names)), key=keys.__getitem__)
    entries = ((keys[i], b"".join((framing[labels[i]][0], views[i], framing[labels[i]][1])))
               for i in order)
    lmdb_io.write_lmdb(path, entries, count=len(names),
                       value_size=len(b"".join(framing[0])) + size * size, append=True,
                       desc=f"{DataFolder.lmdb_dir}/{name}" if progress else None)
    summary = {"total": len(names), "per_class": [labels.count(c) for c in range(num_classes)],
               "cells": len(recs),
               "cells_per_class": [sum(r.label == c for r in recs) for c in range(num_classes)]}
    return summary, view_sum


@dataclass
class _Shared:
    """What the augmentation workers read and write: handed over at fork, never pickled."""
    images: dict            # cell id -> decoded image
    views: np.ndarray       # (views, 76, 76) of the split being built, in shared memory
    params: BuildParams


_worker: _Shared | None = None   # set in each worker process by _init_worker only


def _init_worker(shared: _Shared | None) -> None:
    global _worker
    _worker = shared


def _views(job) -> np.ndarray:
    """Worker: writes every view of some cells into the shared array from view `start` on and
    returns their sum (for the mean)."""
    ids, labels, start, rotate = job
    p = _worker.params
    total = np.zeros((paper.INPUT_SIZE, paper.INPUT_SIZE), np.float64)
    for cell_id, label in zip(ids, labels):
        angles = augment.rotation_angles(label, p.rotation_steps_deg) if rotate else None
        views = augment.cell_views(_worker.images[cell_id], angles, border=p.border,
                                   stretch=p.stretch)
        _worker.views[start:start + len(views)] = views
        start += len(views)
        total += views.sum(axis=0, dtype=np.float64)
    return total


def _pool(workers: int, shared: _Shared | None = None):
    """A fork Pool whose workers get `shared` at fork (the initializer's arguments of a fork
    context are inherited, not pickled) and run OpenCV on one thread: each is one of `workers`
    processes, and OpenCV's own threads on ~70x70 images oversubscribe the cores and cost more
    than they save (measured ~30% more per view). Set in this process around the fork, since
    changing it inside a forked child can hang on this process's OpenCV thread pool."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return get_context("fork").Pool(workers, initializer=_init_worker, initargs=(shared,))
    finally:
        cv2.setNumThreads(threads)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _hash_inputs(root: Path, dataset: CellSet) -> dict:
    """SHA-256 over the label CSV, every image used and what else the reader read (Task 2's
    masks): path relative to `root`, then bytes."""
    files = sorted({rec.image for rec in dataset.records} | set(dataset.meta_files))
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    out = {"folder": str(root.resolve()), "layout": dataset.layout, "files": len(files),
           "sha256": digest.hexdigest()}
    if dataset.meta_files and dataset.meta_files[0].suffix.lower() == ".csv":
        out["csv_sha256"] = hashlib.sha256(dataset.meta_files[0].read_bytes()).hexdigest()
    return out


def _remove_stale_temporaries(data: DataFolder) -> None:
    """Temporaries of a killed earlier run (SIGKILL skips their cleanup); never the outputs."""
    for name in (data.lmdb_dir.name, data.splits_dir.name):
        for stale in data.path.glob(f".{name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)


def _write_skipped(data: DataFolder, skipped: list[DataError]) -> None:
    """skipped.csv lists what --skip-bad left out; absent when nothing was."""
    if not skipped:
        data.skipped.unlink(missing_ok=True)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "line", "reason"])
    for err in skipped:
        writer.writerow([err.file, err.line or "", err.reason])
    atomic.write_text(data.skipped, buf.getvalue())
