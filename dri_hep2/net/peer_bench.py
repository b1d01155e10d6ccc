"""`make bench-peer`: one DRI training iteration in our Caffe and in PyTorch, one run (issue 20).

The question is how far our Caffe's CPU training iteration is from a current framework's on
the same work: the same net (PyTorch's is interpreted from the NetParameter Caffe loads,
net.torch_peer), the same initial weights (Caffe's fillers, copied across), the same seeded
batch, the same update (SGD at the paper's rate, momentum and weight decay, per-blob
multipliers), the same threads (one per core). One iteration is forward + backward + update:
`solver.step(1)` in pycaffe, zero_grad + forward + loss + backward + `optimizer.step()` in
PyTorch.

Each run is a fresh process loading one framework (net.peer_worker says why), `warmup`
iterations then `iterations` timed ones; the configurations take turns, `repeats` rounds, so
that a busier minute of a shared machine hits all of them alike. Other processes only ever
slow an iteration down: the figure that counts is each configuration's fastest iteration, the
mean of all its timed iterations beside it, and the 1-minute load average read before every
run. The ratio is Caffe's time over PyTorch's: above 1, PyTorch is faster.

PyTorch runs twice per round by default: as installed (libgomp's default wait policy, idle
threads spin for a while), and with OMP_WAIT_POLICY=PASSIVE, the setting the toolkit gives its
Caffe (engine.environment, docs/engine.md: it decides Caffe's speed on a shared machine).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

# name -> (label, worker mode, environment added; None removes a variable)
CONFIGS: dict[str, tuple[str, str, dict[str, str | None]]] = {
    "caffe": ("Caffe (ours)", "caffe", {}),
    "torch": ("PyTorch", "torch", {}),
    "torch-passive": ("PyTorch, OMP_WAIT_POLICY=PASSIVE", "torch", {"OMP_WAIT_POLICY": "PASSIVE"}),
}
WORKER_TIMEOUT_S = 900


def worker(mode: str, work: Path, args: list[str], env: dict[str, str | None] | None = None,
           timeout: float = WORKER_TIMEOUT_S) -> dict:
    """Run net.peer_worker in a fresh interpreter; its JSON line."""
    full = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    out = subprocess.run([sys.executable, "-m", "dri_hep2.net.peer_worker", mode, str(work), *args],
                         capture_output=True, text=True, env=full, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"peer_worker {mode} failed (exit {out.returncode}):\n"
                           + (out.stderr + out.stdout)[-3000:])
    return json.loads(lines[-1])


@dataclass
class Run:
    config: str
    load: float
    warmup: int
    result: dict

    @property
    def timed_ms(self) -> list[float]:
        return self.result["times_ms"][self.warmup:]


def measure(work: Path, configs: list[str], repeats: int, warmup: int, iterations: int,
            threads: int | None, seed: int,
            progress: Callable[[str], None] = print) -> list[Run]:
    """`repeats` rounds of every configuration in turn, on the files `prepare` put in `work`.
    `threads` None: PyTorch gets one per core and Caffe its own default (one per core too);
    a number is given to both (OMP_NUM_THREADS and OPENBLAS_NUM_THREADS for Caffe)."""
    runs = []
    torch_threads = threads or os.cpu_count()
    for round_ in range(1, repeats + 1):
        for name in configs:
            _, mode, env = CONFIGS[name]
            env = dict(env)
            args = ["--iterations", str(warmup + iterations), "--seed", str(seed)]
            if mode == "torch":
                args += ["--threads", str(torch_threads)]
            elif threads:
                env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
            load = os.getloadavg()[0]
            run = Run(name, load, warmup, worker(mode, work, args, env))
            runs.append(run)
            progress(f"round {round_}/{repeats} {name:14s} load {load:4.1f}  ms/iter "
                     + " ".join(f"{t:,.0f}" for t in run.result["times_ms"])
                     + f"  (first {warmup} warm-up)")
    return runs


@dataclass
class Summary:
    config: str
    best_ms: float
    mean_ms: float
    best_run_mean_ms: float
    loads: tuple[float, float]
    first_loss: float
    info: dict = field(default_factory=dict)


def summarise(runs: list[Run]) -> dict[str, Summary]:
    out = {}
    for name in dict.fromkeys(r.config for r in runs):
        mine = [r for r in runs if r.config == name]
        timed = [t for r in mine for t in r.timed_ms]
        out[name] = Summary(name, min(timed), statistics.fmean(timed),
                            min(statistics.fmean(r.timed_ms) for r in mine),
                            (min(r.load for r in mine), max(r.load for r in mine)),
                            mine[0].result["first_loss"], mine[-1].result)
    return out


def torch_wheel() -> str:
    """The installed torch, its size on disk and the size of the wheel it came from, where that
    wheel lies in one of pip's find-links folders (the pyproject extra pins it)."""
    try:
        dist = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        return "torch not installed"
    installed = sum(f.size or 0 for f in dist.files or ())
    text = f"torch {dist.version}, installed {installed / 1e6:,.0f} MB"
    folders = [p for p in os.environ.get("PIP_FIND_LINKS", "").split() if p]
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                            text=True).stdout
    for value in re.findall(r"find-links='([^']*)'", listed):
        folders += value.split()
    for folder in dict.fromkeys(folders):
        folder = folder.removeprefix("file://")
        wheels = sorted(Path(folder).glob(f"torch-{dist.version}-*.whl")) \
            if Path(folder).is_dir() else []
        if wheels:
            return f"{text}; wheel {wheels[0].name}, {wheels[0].stat().st_size / 1e6:,.1f} MB"
    return f"{text}; wheel not found in pip's find-links folders"


def report(prep: dict, runs: list[Run], repeats: int, warmup: int, iterations: int,
           loads: tuple[float, float], cpu: str) -> str:
    """Markdown: what ran, the table, the ratios."""
    s = summarise(runs)
    caffe = s.get("caffe")
    torch_info = next((x.info for x in s.values() if x.config != "caffe"), {})
    lines = [
        f"## PyTorch peer: {prep['variant']} training iteration, batch {prep['batch']} "
        f"({datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()})",
        "",
        f"- machine: {os.cpu_count()} CPUs ({cpu}); 1-minute load average {loads[0]:.1f} at the "
        f"start, {loads[1]:.1f} at the end",
        f"- Caffe: {prep['caffe']} ({prep['caffe_build']}); BLAS {prep['blas']}",
        f"- PyTorch: {torch_wheel()}; {torch_info.get('backends', '?')}",
        f"- same net (learned parameters: Caffe {prep['learned_params']:,}, PyTorch "
        f"{torch_info.get('learned_params', 0):,}), same initial weights and batch (seed "
        f"{prep['seed']}); SGD lr {prep['base_lr']:g}, momentum {prep['momentum']:g}, weight "
        f"decay {prep['weight_decay']:g} with Caffe's per-blob multipliers",
        f"- {repeats} runs per configuration, round-robin, each a fresh process: {warmup} "
        f"warm-up + {iterations} timed iterations (forward + backward + SGD update)",
        "",
        "| framework | version | threads | OMP_WAIT_POLICY | ms / iter, best | mean | "
        "best run's mean | loss, iteration 1 | load |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for x in s.values():
        label = CONFIGS[x.config][0]
        version = x.info.get("version") or prep["caffe"].removeprefix("BVLC Caffe ")
        lines.append(f"| {label} | {version} | {x.info.get('threads', '?')} | "
                     f"{x.info.get('omp_wait_policy') or 'unset'} | {x.best_ms:,.0f} | "
                     f"{x.mean_ms:,.0f} | {x.best_run_mean_ms:,.0f} | {x.first_loss:.4f} | "
                     f"{x.loads[0]:.1f}-{x.loads[1]:.1f} |")
    lines.append("")
    if caffe:
        for x in s.values():
            if x.config != "caffe":
                lines.append(f"Caffe time / {CONFIGS[x.config][0]} time: best "
                             f"{caffe.best_ms / x.best_ms:.2f}, mean {caffe.mean_ms / x.mean_ms:.2f} "
                             "(above 1: PyTorch is faster)")
        lines.append("The losses of iteration 1 differ only through the dropout masks.")
    return "\n".join(lines)
