"""The iteration inside `caffe train` beside the iteration of `caffe time`, on the same net
(issue 20): what the solver loop costs on top of forward + backward.

`caffe time` runs forward and backward alone; `caffe train` adds the solver's update, the Data
layer's prefetch thread and, between its GEMMs, whatever the BLAS's own threads do while
Caffe's OpenMP loops want the same cores. To compare the two on one net, both run the
benchmark net (build.benchmark) with its Input layer replaced by a TRAIN Data layer over a
small LMDB of random cells (uint8, INPUT_SCALE applied, no mean: speed does not depend on the
pixels), so `caffe time` reads through the same prefetch thread that `caffe train` does.

The train run has no test net (validation excluded, as the issue asks), `display: 1`, and no
snapshots; its iterations are read off its own log: Caffe prints "Iteration N (X iter/s, Ys/1
iters)" after each forward-backward, timed from the previous line, so each figure is one
whole iteration (the previous update, then this forward and backward). The first `warmup`
lines are dropped (buffers paged in, threads started).
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ledger, paper
from ..data import lmdb_io
from . import build, profile, proto
from .proto import L, P, caffe, caffe_pb2

_DISPLAY = re.compile(r"Iteration (\d+) \(([0-9.eE+-]+) iter/s, ([0-9.eE+-]+)s/1 iters\)")


@dataclass
class TrainIterations:
    """Seconds of each timed iteration of one `caffe train` run, warm-up dropped."""
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.seconds)) * 1000

    @property
    def best_ms(self) -> float:
        return min(self.seconds) * 1000


def random_lmdb(path: Path, count: int, seed: int = 0) -> Path:
    """`count` random 1 x 76 x 76 cells with labels cycling over the six classes."""
    rng = np.random.default_rng(seed)
    size = paper.INPUT_SIZE
    entries = ((f"{i:08d}".encode(),
                lmdb_io.encode_datum(rng.integers(0, 256, (size, size), np.uint8),
                                     i % paper.NUM_CLASSES))
               for i in range(count))
    return lmdb_io.write_lmdb(path, entries, count=count, value_size=size * size + 16,
                              append=True)


def lmdb_net(variant: str, source: Path, batch_size: int = paper.BATCH_SIZE):
    """build.benchmark's TRAIN net with a Data layer over `source` in place of its Input."""
    net = build.benchmark(variant, batch_size)
    data = caffe.NetSpec()
    data.data, data.label = L.Data(source=str(source), backend=P.Data.LMDB,
                                   batch_size=batch_size, ntop=2,
                                   transform_param=dict(scale=ledger.INPUT_SCALE))
    assert net.layer[0].type == "Input", net.layer[0]
    net.layer[0].CopyFrom(data.to_proto().layer[0])
    return net


def train_solver(net_path: Path, iterations: int):
    """Section 2.3's SGD (momentum, weight decay) at a fixed rate, no test net, no snapshot."""
    sp = caffe_pb2.SolverParameter()
    sp.train_net = str(net_path)
    sp.type = "SGD"
    sp.base_lr = 0.001
    sp.lr_policy = "fixed"
    sp.momentum = paper.MOMENTUM
    sp.weight_decay = ledger.WEIGHT_DECAY
    sp.max_iter = iterations
    sp.display = 1
    sp.snapshot_after_train = False
    sp.random_seed = ledger.RANDOM_SEED
    return sp


def parse_train_log(text: str, warmup: int) -> TrainIterations:
    lines = _DISPLAY.findall(text)
    if len(lines) <= warmup:
        raise ValueError(f"caffe train logged {len(lines)} iterations, fewer than the "
                         f"{warmup} of warm-up plus one")
    return TrainIterations([float(seconds) for _, _, seconds in lines[warmup:]])


def caffe_train(caffe_bin: Path, net_param, iterations: int, warmup: int = 2,
                env: dict[str, str | None] | None = None,
                timeout: float | None = None) -> TrainIterations:
    """`caffe train` of `net_param` for warmup + iterations steps with `caffe_bin` and `env`
    (added to this process's environment; None removes a variable), as profile.caffe_time."""
    full = profile.logging_env(env)
    with tempfile.TemporaryDirectory(prefix="train-timing.") as tmp:
        net_path = Path(tmp) / "train.prototxt"
        net_path.write_text(proto.to_text(net_param))
        solver_path = Path(tmp) / "solver.prototxt"
        solver_path.write_text(proto.to_text(train_solver(net_path, warmup + iterations)))
        out = subprocess.run([str(caffe_bin), "train", "-solver", str(solver_path)],
                             capture_output=True, text=True, env=full, cwd=tmp,
                             timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"caffe train failed (exit {out.returncode}):\n"
                           + (out.stderr + out.stdout)[-2000:])
    return parse_train_log(out.stderr + out.stdout, warmup)


@dataclass
class Pair:
    """One round of a build: `caffe time`'s and `caffe train`'s iterations (ms), and the load
    before it."""
    load: float
    time_ms: list[float]
    train_ms: list[float]


def compare(configs: dict[str, tuple[Path, dict]], variant: str, batch_size: int,
            iterations: int, repeats: int) -> dict[str, list[Pair]]:
    """`caffe time` and `caffe train` on one LMDB net for each configuration (name: caffe
    binary and environment), round-robin `repeats` times so that a busier minute of a shared
    machine hits every configuration alike."""
    pairs: dict[str, list[Pair]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory(prefix="train-vs-time.") as tmp:
        source = random_lmdb(Path(tmp) / "cells", 8 * batch_size)
        net = lmdb_net(variant, source, batch_size)
        for r in range(repeats):
            for b, (caffe_bin, env) in configs.items():
                load = os.getloadavg()[0]
                timed = profile.caffe_time(caffe_bin, net, iterations, env)
                trained = caffe_train(caffe_bin, net, iterations, env=env)
                pairs[b].append(Pair(load, timed.iterations_ms,
                                     [s * 1000 for s in trained.seconds]))
                print(f"  train vs time {r + 1}/{repeats} {b}: caffe time "
                      f"{np.median(timed.iterations_ms):,.0f} ms, caffe train "
                      f"{trained.median_ms:,.0f} ms (load {load:.2f})", flush=True)
    return pairs


def medians(rows: list[Pair]) -> tuple[float, float]:
    """`caffe time`'s and `caffe train`'s iteration (ms): the median of the runs' medians."""
    return (float(np.median([np.median(r.time_ms) for r in rows])),
            float(np.median([np.median(r.train_ms) for r in rows])))


def ratio(rows: list[Pair]) -> float:
    """`caffe train`'s iteration over `caffe time`'s: the ratio of the medians."""
    time_ms, train_ms = medians(rows)
    return train_ms / time_ms


def table(pairs: dict[str, list[Pair]]) -> str:
    lines = ["| configuration | caffe time ms / iter (median; best) | caffe train ms / iter "
             "(median; best) | train / time | load (1 min) |", "|---|---:|---:|---:|---:|"]
    for b, rows in pairs.items():
        time_ms, train_ms = medians(rows)
        best_time = min(min(r.time_ms) for r in rows)
        best_train = min(min(r.train_ms) for r in rows)
        loads = [r.load for r in rows]
        lines.append(f"| {b} | {time_ms:,.0f}; {best_time:,.0f} | {train_ms:,.0f}; "
                     f"{best_train:,.0f} | **{train_ms / time_ms:.2f}** | "
                     f"{min(loads):.1f}-{max(loads):.1f} |")
    return "\n".join(lines)
