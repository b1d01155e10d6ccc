"""`make bench-predict`: make predict's Caffe backend against its onnxruntime backend, the same
model and cells, one run, and their ratio (issue 20).

Both backends are timed through the code make predict runs: `backends.open_model` (CaffeModel
or OnnxModel, each loaded once) and `backends.branch_probabilities` over all the cells, at each
batch size asked for. The subject (a run, its export, the cells) comes from
dri_hep2.model.bench_subject.

Each backend runs in a process of its own, as make predict runs one backend per process, so
that neither engine's thread pools (OpenBLAS's and libgomp's in Caffe, onnxruntime's own) share
a process with the other's. Both stay loaded for the whole run and take turns (round-robin,
the order alternating between rounds) so that a busier minute of a shared machine hits both
alike; the idle one waits in a blocking read and takes no CPU. `--same-process` runs both in
one process instead; measured on the 2-core development machine (2026-12-07, another job's
`caffe train` on one core; 256 synthetic cells, batch 64, 3 rounds, fastest passes, Caffe /
onnxruntime): with Caffe on OpenBLAS's pthread build (load 3.6-3.9) 0.80 and 0.65 in one
process, 0.68 and 0.65 in two; on its OpenMP build (load 3.1-3.8) 0.64 and 0.62 in one, 0.77
and 0.70 in two. No difference beyond the machine's noise, so the default is the setting
make predict has, one backend per process.

Round 0 of each (backend, batch size) is the cold pass (first forward at that shape:
allocation, onnxruntime's first-run work) and is reported apart; the timed rounds follow.
Other processes only ever slow a pass down, so the headline is the fastest pass (cells/s),
the mean of the timed passes beside it, and the 1-minute load average read before each pass.
The probabilities of the cold passes are compared between the backends (fused, largest
absolute difference, and whether every call agrees) and between batch sizes.
"""
from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LABELS = {"caffe": "Caffe (pycaffe)", "onnx": "onnxruntime"}


def loadavg() -> float:
    return os.getloadavg()[0]


def _open(spec: dict):
    from . import backends
    from ..experiment.run import RunDir
    if spec["backend"] == "caffe":
        return backends.open_model("caffe", RunDir(spec["run_dir"]), weights=spec["weights"])
    return backends.open_model("onnx", None, model_dir=spec["export"])


def _pass(model, views: np.ndarray, batch: int) -> tuple[float, dict[int, np.ndarray]]:
    """One make-predict pass over all views: seconds and the branch probabilities."""
    from .backends import branch_probabilities
    t = time.perf_counter()
    probs = branch_probabilities(model, views, batch, progress=False)
    return time.perf_counter() - t, probs


def _profile(model, views: np.ndarray, batch: int, repeats: int) -> dict[str, float]:
    from .predict_profile import profile
    return profile(model, views, batch, repeats)


# What a worker is asked: one timed pass (batch) or a per-layer profile (batch, repeats).
_TASKS = {"pass": _pass, "profile": _profile}


def _serve(conn, spec: dict) -> None:
    """A backend's worker process: load the model once, then do what it is sent. The spec's
    `env` is set first, before Caffe's libraries load and read it (OpenBLAS, libgomp)."""
    os.environ.update(spec.get("env", {}))
    model = _open(spec)
    views = conn.recv()
    conn.send("ready")
    while (task := conn.recv()) is not None:
        conn.send(_TASKS[task[0]](model, views, *task[1:]))
    conn.close()


class Worker:
    """A backend in its own process (spawned: a fresh interpreter, nothing inherited)."""

    def __init__(self, spec: dict, views: np.ndarray):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, spec), daemon=True)
        self.process.start()
        child.close()
        self.conn.send(views)
        if self.conn.recv() != "ready":
            raise RuntimeError(f"the {spec['backend']} worker did not start")

    def call(self, task: str, *args):
        self.conn.send((task, *args))
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


class Local:
    """A backend in this process (--same-process: the measurement behind the default)."""

    def __init__(self, spec: dict, views: np.ndarray):
        self.model, self.views = _open(spec), views

    def call(self, task: str, *args):
        return _TASKS[task](self.model, self.views, *args)

    def close(self) -> None:
        pass


@dataclass
class Row:
    backend: str
    batch: int
    cells: int
    cold_s: float = 0.0
    seconds: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    fused: np.ndarray | None = None

    @property
    def best(self) -> float:
        return self.cells / min(self.seconds)

    @property
    def mean(self) -> float:
        return self.cells / statistics.mean(self.seconds)

    @property
    def cold(self) -> float:
        return self.cells / self.cold_s


def _fused(probs: dict[int, np.ndarray]) -> np.ndarray:
    """make predict's fused probabilities (predict.py: the branch sum over their number)."""
    return sum(probs[b] for b in sorted(probs)) / len(probs)


def measure(specs: dict[str, dict], views: np.ndarray, batches: list[int], repeats: int,
            same_process: bool = False, say=print,
            profiles: dict[str, dict[str, float]] | None = None) -> list[Row]:
    """Rows per (batch, backend): a cold pass, then `repeats` timed rounds, round-robin.
    With a dict for `profiles`, each backend's per-layer-type profile (predict_profile) at
    the first batch size is put into it, after the timed rounds."""
    make = Local if same_process else Worker
    workers = {}
    try:
        for name, spec in specs.items():
            workers[name] = make(spec, views)
        rows = {(b, name): Row(name, b, len(views)) for b in batches for name in specs}
        order = list(specs)
        for rnd in range(repeats + 1):
            for batch in batches:
                for name in (order if rnd % 2 == 0 else order[::-1]):
                    row = rows[(batch, name)]
                    load = loadavg()
                    seconds, probs = workers[name].call("pass", batch)
                    if rnd == 0:
                        row.cold_s, row.fused = seconds, _fused(probs)
                    else:
                        row.seconds.append(seconds)
                        row.loads.append(load)
                    say(f"  round {rnd}{' (cold)' if rnd == 0 else ''}: {name:5s} batch {batch:4d} "
                        f"{len(views) / seconds:7.1f} cells/s  load {load:.2f}")
        if profiles is not None:
            for name in order:
                profiles[name] = workers[name].call("profile", batches[0], repeats)
        return list(rows.values())
    finally:
        for worker in workers.values():
            worker.close()


def agreement(rows: list[Row]) -> dict:
    """Largest |fused Caffe - fused onnxruntime| and differing calls, per batch size; and the
    largest change of each backend's fused probabilities across batch sizes."""
    by = {(r.batch, r.backend): r.fused for r in rows}
    batches = sorted({r.batch for r in rows})
    out: dict = {"backends": {}, "batch_sizes": {}}
    for b in batches:
        c, o = by.get((b, "caffe")), by.get((b, "onnx"))
        if c is not None and o is not None:
            out["backends"][b] = {"max_abs_diff": float(np.abs(c - o).max()),
                                  "calls_differing": int((c.argmax(1) != o.argmax(1)).sum())}
    for name in {r.backend for r in rows}:
        first = by[(batches[0], name)]
        out["batch_sizes"][name] = max(float(np.abs(by[(b, name)] - first).max())
                                       for b in batches)
    return out


def ratios(rows: list[Row]) -> dict[int, tuple[float, float]]:
    """Per batch size: Caffe's cells/s over onnxruntime's, best pass and mean."""
    by = {(r.batch, r.backend): r for r in rows}
    return {b: (by[(b, "caffe")].best / by[(b, "onnx")].best,
                by[(b, "caffe")].mean / by[(b, "onnx")].mean)
            for b in sorted({r.batch for r in rows})
            if (b, "caffe") in by and (b, "onnx") in by}


def table(rows: list[Row]) -> str:
    """The results table (markdown): one row per backend and batch size, with the ratio."""
    rat = ratios(rows)
    lines = ["| backend | batch | cells/s (best) | cells/s (mean) | cold pass | load | "
             "Caffe / onnxruntime (best, mean) |",
             "|---|---:|---:|---:|---:|---|---:|"]
    for r in sorted(rows, key=lambda r: (r.batch, r.backend)):
        ratio = (f"{rat[r.batch][0]:.2f}, {rat[r.batch][1]:.2f}"
                 if r.backend == "caffe" and r.batch in rat else "")
        lines.append(f"| {LABELS[r.backend]} | {r.batch} | {r.best:.1f} | {r.mean:.1f} | "
                     f"{r.cold:.1f} | {min(r.loads):.1f}-{max(r.loads):.1f} | {ratio} |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> dict:
    """Everything measured, for --json."""
    return {"rows": [{"backend": r.backend, "batch": r.batch, "cells": r.cells,
                      "best_cells_per_s": r.best, "mean_cells_per_s": r.mean,
                      "cold_cells_per_s": r.cold, "seconds": r.seconds, "loads": r.loads}
                     for r in rows],
            "ratios": {b: {"best": v[0], "mean": v[1]} for b, v in ratios(rows).items()},
            "fastest": {name: max(((r.batch, r.best) for r in rows if r.backend == name),
                                  key=lambda br: br[1]) for name in {r.backend for r in rows}},
            "agreement": agreement(rows)}


def specs(run_dir: Path, weights: Path, export: Path,
          caffe_env: dict[str, str] | None = None) -> dict[str, dict]:
    """How each worker opens its backend: Caffe from the run and snapshot (with `caffe_env`
    added to its environment), onnxruntime from the export folder (not RUN_DIR/export: the
    subject may have exported elsewhere)."""
    return {"caffe": {"backend": "caffe", "run_dir": str(run_dir), "weights": str(weights),
                      "env": dict(caffe_env or {})},
            "onnx": {"backend": "onnx", "export": str(export)}}


def run(*, run_dir: Path | None, weights: Path | None, images: Path | None,
        split: str | None, cells: int, batches: list[int], repeats: int,
        same_process: bool = False, profile: bool = False,
        caffe_env: dict[str, str] | None = None, say=print) -> dict:
    """The benchmark: the subject made or found, the cells read, both backends measured.
    Returns `summary` plus what was timed; `say` gets the progress lines."""
    import tempfile
    from . import bench_subject
    from ..errors import UserError
    if repeats < 1:
        raise UserError(f"--repeats {repeats}: give at least one timed round")
    if caffe_env and same_process:
        raise UserError("--caffe-env needs a process of Caffe's own (not --same-process): "
                        "its libraries read the variables when they load")
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        if run_dir is None:
            say("no RUN_DIR: a DRI with fresh (untrained) weights, its ONNX export and "
                "synthetic cells, made in a scratch folder")
            subject = bench_subject.fresh_subject(work)
        else:
            subject = bench_subject.run_subject(run_dir, work, weights, check_images=images)
        source = images or subject.replica or bench_subject.synthetic_cells(work)
        views, where = bench_subject.bench_views(
            source, cells, split=split if images else None, run=subject.run,
            stretch=subject.run.input_stretch())
        say(f"model: {subject.run.path} ({subject.weights.name}), export {subject.export}; "
            f"{len(views)} cells of {where}")
        profiles: dict | None = {} if profile else None
        rows = measure(specs(subject.run.path, subject.weights, subject.export, caffe_env), views,
                       batches, repeats, same_process, say, profiles)
    result = summary(rows)
    if profiles:
        from .predict_profile import table as profile_table
        result["profiles"] = profiles
        result["profile_table"] = profile_table(profiles, LABELS, batches[0])
    result.update({"rows_table": table(rows), "random_weights": subject.random_weights,
                   "run_dir": None if subject.random_weights else str(subject.run.path),
                   "weights": subject.weights.name, "cells": len(views), "cells_from": where,
                   "same_process": same_process, "repeats": repeats,
                   "caffe_env": caffe_env or {}})
    return result
