"""`make data`: an I3A folder -> DATA_DIR/{lmdb/{train,val,test}, lmdb/mean.binaryproto, splits/,
manifest.json} (docs/data.md), following the paper's protocol (section 3.2, Table 2).

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
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .. import atomic, paper
from . import augment, i3a, lmdb_io, split

FORMAT = 1              # bump when the outputs change for the same inputs and parameters
MANIFEST = "manifest.json"
_CHUNK = 64             # cells per worker task

_images: list[np.ndarray] = []   # decoded cells, shared with forked workers
_out: np.ndarray | None = None   # (views, 76, 76) of the split being built, shared likewise


def build_dataset(i3a_dir: str | Path, data_dir: str | Path = "data", *,
                  protocol: str = "cell", seed: int = paper.RANDOM_SEED, skip_bad: bool = False,
                  steps: tuple[int, ...] | None = None, border: str = "reflect101",
                  stretch: bool = False, workers: int | None = None, progress: bool = True,
                  force: bool = False) -> dict:
    """Build the data folder and return its manifest (the existing one if already up to date)."""
    global _images, _out
    start = time.perf_counter()
    data_dir = Path(data_dir)
    workers = workers or os.cpu_count() or 1
    steps = tuple(steps) if steps else tuple(paper.rotation_step_deg(c)
                                             for c in range(paper.NUM_CLASSES))
    for label in range(paper.NUM_CLASSES):
        augment.rotation_angles(label, steps)               # refuse bad steps before any work
    if border not in augment.BORDERS:
        raise ValueError(f"unknown border {border!r} ({', '.join(augment.BORDERS)})")
    dataset = i3a.read_i3a(i3a_dir, skip_bad=skip_bad)
    params = {"protocol": protocol, "seed": seed, "rotation_steps_deg": list(steps),
              "border": border, "stretch": stretch, "input_size": paper.INPUT_SIZE,
              "rotation_interpolation": "linear", "resize_interpolation": "area/linear",
              "skip_bad": skip_bad, "format": FORMAT}
    inputs = _hash_inputs(Path(i3a_dir), dataset)
    build_hash = hashlib.sha256(json.dumps([inputs["sha256"], params], sort_keys=True)
                                .encode()).hexdigest()
    old = _current_manifest(data_dir)
    if old and old.get("build_hash") == build_hash and not force:
        print(f"{data_dir} is up to date with {i3a_dir} (same inputs and parameters): "
              "nothing to do")
        return old

    # Decode every image before writing anything: bad PNGs stop the run here.
    records = dataset.records
    with _pool(workers) as pool:
        decoded = []
        for part in tqdm(pool.imap(i3a.load_images, _chunks(records, _CHUNK * 4)),
                         total=-(-len(records) // (_CHUNK * 4)), desc="read cells",
                         unit="x256", disable=not progress):
            decoded.append(part)
    images = [img for part, _ in decoded for img in part]
    errors = [err for _, errs in decoded for err in errs]
    if errors and not skip_bad:
        raise i3a.I3AError(errors[0].reason + (f" (and {len(errors) - 1} more unreadable)"
                                               if len(errors) > 1 else ""), errors[0].file)
    skipped = dataset.skipped + errors
    keep = [k for k, img in enumerate(images) if img is not None]
    records = [records[k] for k in keep]
    _images = [images[k] for k in keep]
    index = {rec.id: k for k, rec in enumerate(records)}
    splits = split.split_records(records, seed=seed, protocol=protocol)

    # Temporaries of a killed earlier run (SIGKILL skips their cleanup); never the outputs.
    for stale in [*data_dir.glob(".lmdb.*.tmp"), *data_dir.glob(".splits.*.tmp")]:
        shutil.rmtree(stale, ignore_errors=True)
    # The outputs are about to change: drop the manifest that certifies the old ones.
    (data_dir / MANIFEST).unlink(missing_ok=True)
    size = paper.INPUT_SIZE
    value_size = len(lmdb_io.encode_datum(np.zeros((size, size), np.uint8), 0))
    summary, mean = {}, None
    with atomic.staged_path(data_dir / "lmdb", is_dir=True) as lmdb_tmp:
        for s, name in enumerate(split.SPLITS):
            recs = splits[name]
            angles = [augment.rotation_angles(r.label, steps) if name == "train" else [0]
                      for r in recs]
            names = [f"{r.id}_r{a:03d}" if name == "train" else r.id
                     for r, angs in zip(recs, angles) for a in angs]
            labels = [r.label for r, angs in zip(recs, angles) for _ in angs]
            keys = lmdb_io.shuffled_keys(names, [seed, s])
            starts = np.cumsum([0] + [len(a) for a in angles]).tolist()
            # Workers write their views straight into memory shared with this process (an
            # anonymous shared mapping made before the fork) instead of pickling them back.
            _out = np.frombuffer(mmap.mmap(-1, max(len(names), 1) * size * size), np.uint8,
                                 len(names) * size * size).reshape(-1, size, size)
            total_sum = np.zeros((size, size), np.float64)
            jobs = [([index[r.id] for r in part], [r.label for r in part], starts[j * _CHUNK],
                     name == "train", steps, border, stretch)
                    for j, part in enumerate(_chunks(recs, _CHUNK))]
            with _pool(workers) as pool:
                for view_sum in tqdm(pool.imap_unordered(_views, jobs), total=len(jobs),
                                     desc=f"augment {name}", unit=f"x{_CHUNK}",
                                     disable=not progress):
                    total_sum += view_sum     # integer-valued: exact in any order
            # Written in key order (the order Caffe reads), so LMDB can append.
            framing = [lmdb_io.datum_framing((1, size, size), c)
                       for c in range(paper.NUM_CLASSES)]
            order = sorted(range(len(names)), key=keys.__getitem__)
            entries = ((keys[i], b"".join((framing[labels[i]][0], _out[i],
                                           framing[labels[i]][1]))) for i in order)
            lmdb_io.write_lmdb(lmdb_tmp / name, entries, count=len(names),
                               value_size=value_size, append=True,
                               desc=f"lmdb/{name}" if progress else None)
            _out = None
            per_class = [labels.count(c) for c in range(paper.NUM_CLASSES)]
            summary[name] = {"total": len(names), "per_class": per_class,
                             "cells": len(recs),
                             "cells_per_class": [sum(r.label == c for r in recs)
                                                 for c in range(paper.NUM_CLASSES)]}
            if name == "train":
                mean = total_sum / len(names)
        atomic.write_bytes(lmdb_tmp / "mean.binaryproto", lmdb_io.mean_blob(mean[None]))
    with atomic.staged_path(data_dir / "splits", is_dir=True) as splits_tmp:
        split.write_split_csvs(splits, splits_tmp)
    _write_skipped(data_dir, skipped)
    manifest = {
        "format": FORMAT,
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_hash": build_hash,
        "inputs": inputs,
        "parameters": params,
        "class_order": list(paper.CLASSES),
        "splits": summary,
        "lmdb": {name: f"lmdb/{name}" for name in split.SPLITS},
        "mean": "lmdb/mean.binaryproto",
        "skipped": len(skipped),
        "build_seconds": round(time.perf_counter() - start, 2),
        "workers": workers,
    }
    atomic.write_text(data_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    _images = []
    return manifest


def _views(job) -> np.ndarray:
    """Worker: writes every view of some cells into `_out` from view `start` on and returns
    their sum (for the mean)."""
    indices, labels, start, rotate, steps, border, stretch = job
    total = np.zeros((paper.INPUT_SIZE, paper.INPUT_SIZE), np.float64)
    for k, label in zip(indices, labels):
        angles = augment.rotation_angles(label, steps) if rotate else None
        views = augment.cell_views(_images[k], angles, border=border, stretch=stretch)
        _out[start:start + len(views)] = views
        start += len(views)
        total += views.sum(axis=0, dtype=np.float64)
    return total


def _pool(workers: int):
    """A fork Pool whose workers run OpenCV on one thread: each is one of `workers` processes,
    and OpenCV's own threads on ~70x70 images oversubscribe the cores and cost more than they
    save (measured ~30% more per view). Set in this process around the fork, since changing it
    inside a forked child can hang on this process's OpenCV thread pool."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return get_context("fork").Pool(workers)
    finally:
        cv2.setNumThreads(threads)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _hash_inputs(root: Path, dataset: i3a.I3ASet) -> dict:
    """SHA-256 over the CSV and every image used (path relative to `root`, then bytes)."""
    files = sorted({rec.image for rec in dataset.records}
                   | ({root / i3a.CSV_NAME} if (root / i3a.CSV_NAME).is_file() else set()))
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    out = {"folder": str(root.resolve()), "layout": dataset.layout, "files": len(files),
           "sha256": digest.hexdigest()}
    if (root / i3a.CSV_NAME).is_file():
        out["csv_sha256"] = hashlib.sha256((root / i3a.CSV_NAME).read_bytes()).hexdigest()
    return out


def _current_manifest(data_dir: Path) -> dict | None:
    """The manifest, if it and every output it names are present."""
    path = data_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    needed = [data_dir / p for p in manifest.get("lmdb", {}).values()]
    needed += [data_dir / "lmdb" / "mean.binaryproto"]
    needed += [data_dir / "splits" / f"{s}.csv" for s in split.SPLITS]
    return manifest if all(p.exists() for p in needed) else None


def _write_skipped(data_dir: Path, skipped: list[i3a.I3AError]) -> None:
    """DATA_DIR/skipped.csv lists what --skip-bad left out; absent when nothing was."""
    path = data_dir / "skipped.csv"
    if not skipped:
        path.unlink(missing_ok=True)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "line", "reason"])
    for err in skipped:
        writer.writerow([err.file, err.line or "", err.reason])
    atomic.write_text(path, buf.getvalue())
