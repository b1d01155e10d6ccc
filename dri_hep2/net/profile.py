"""Where a training iteration's time goes: `caffe time`'s per-layer lines, grouped.

`caffe time` runs the TRAIN net forward and backward `-iterations` times and logs, per layer,
"<name>\tforward: X ms." and "<name>\tbackward: Y ms." (averages over the iterations), then the
average forward, backward and forward-backward times, and before that each iteration's own
time ("Iteration: j forward-backward time: Z ms."). This module runs it with any Caffe binary
and environment (so that several builds and settings can be compared in one run), and groups
the layer times by layer type (from the net's NetParameter; the Split layers that Caffe
inserts for blobs used twice are not in it and count as "Split") and by stage of the DRI net
(stem, stage 1-3 with the pooling that opens them, the three classifier heads).
"""
from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import proto

_LAYER = re.compile(r"\]\s*(\S+)\s+(forward|backward): ([0-9.eE+-]+) ms\.")
_AVERAGE = re.compile(r"Average (Forward pass|Backward pass|Forward-Backward): ([0-9.eE+-]+) ms")
_ITERATION = re.compile(r"Iteration: \d+ forward-backward time: ([0-9.eE+-]+) ms")
_STAGE = re.compile(r"^(?:dri|inception)_(\d)_|^pool(\d)/|^loss(\d)/")


@dataclass
class LayerTime:
    name: str
    type: str
    stage: str
    forward_ms: float = 0.0
    backward_ms: float = 0.0


@dataclass
class Profile:
    """One `caffe time` run: per-layer averages and the run's totals (ms per iteration)."""
    layers: list[LayerTime]
    forward_ms: float
    backward_ms: float
    total_ms: float
    iterations_ms: list[float] = field(default_factory=list)

    @property
    def best_iteration_ms(self) -> float:
        return min(self.iterations_ms) if self.iterations_ms else self.total_ms

    def grouped(self, key: str) -> dict[str, tuple[float, float]]:
        """{type or stage: (forward ms, backward ms)}, largest total first."""
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for layer in self.layers:
            s = sums[getattr(layer, key)]
            s[0] += layer.forward_ms
            s[1] += layer.backward_ms
        return dict(sorted(((k, (f, b)) for k, (f, b) in sums.items()),
                           key=lambda kv: -(kv[1][0] + kv[1][1])))

    def by_type(self) -> dict[str, tuple[float, float]]:
        return self.grouped("type")

    def by_stage(self) -> dict[str, tuple[float, float]]:
        return self.grouped("stage")

    @property
    def layer_sum_ms(self) -> float:
        return sum(layer.forward_ms + layer.backward_ms for layer in self.layers)


def stage_of(name: str) -> str:
    """Stage of a DRI-family layer from its name: dri_2_1/... and pool2/... -> "stage 2",
    loss1/... -> "head 1", anything else (data, conv1, pool1, conv2, fused) -> "stem"."""
    m = _STAGE.search(name)
    if not m:
        return "stem"
    if m.group(1) or m.group(2):
        digit = m.group(1) or m.group(2)
        return "stem" if digit == "1" and m.group(2) else f"stage {digit}"
    return f"head {m.group(3)}"


def layer_types(net_param) -> dict[str, str]:
    return {layer.name: layer.type for layer in net_param.layer}


def parse(text: str, net_param=None) -> Profile:
    """Parse `caffe time`'s log (glog INFO lines). Layer types come from `net_param`."""
    types = layer_types(net_param) if net_param is not None else {}
    layers: dict[str, LayerTime] = {}
    for name, phase, ms in _LAYER.findall(text):
        lt = layers.get(name)
        if lt is None:
            lt = layers[name] = LayerTime(name, types.get(name, "Split" if name.endswith("_split")
                                                         else "?"), stage_of(name))
        setattr(lt, f"{phase}_ms", float(ms))
    averages = dict(_AVERAGE.findall(text))
    if "Forward-Backward" not in averages:
        raise ValueError("no 'Average Forward-Backward' line in caffe time's output")
    return Profile(list(layers.values()), float(averages.get("Forward pass", 0)),
                   float(averages.get("Backward pass", 0)), float(averages["Forward-Backward"]),
                   [float(x) for x in _ITERATION.findall(text)])


def logging_env(env: dict[str, str | None] | None) -> dict[str, str]:
    """This process's environment with `env` added (a value None removes the variable) and
    glog's INFO lines on stderr: `caffe time` and `caffe train` report through them."""
    full = dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1")
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return full


def caffe_time(caffe_bin: Path, net_param, iterations: int = 3,
               env: dict[str, str | None] | None = None,
               timeout: float | None = None, gpu: int | None = None) -> Profile:
    """`caffe time` of `net_param` (a NetParameter with Input layers) with the binary
    `caffe_bin` (on GPU `gpu`, else the CPU) and `env` added to (and overriding) this
    process's environment; a value None removes the variable."""
    full = logging_env(env)
    with proto.temporary(net_param) as model:
        out = subprocess.run([str(caffe_bin), "time", "-model", str(model),
                              "-iterations", str(iterations)]
                             + ([] if gpu is None else ["-gpu", str(gpu)]),
                             capture_output=True, text=True, env=full, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"caffe time failed (exit {out.returncode}):\n"
                           + (out.stderr + out.stdout)[-2000:])
    return parse(out.stderr + out.stdout, net_param)


def shares_table(profiles: dict[str, Profile], key: str = "type", top: int = 10) -> str:
    """Markdown: per group, forward and backward share of each profile's layer time sum,
    with ms per iteration; groups in the order of the first profile."""
    first = next(iter(profiles.values()))
    groups = list(first.grouped(key))[:top]
    head = "| " + key + " | " + " | ".join(f"{name} fwd | {name} bwd" for name in profiles) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(profiles)]
    for g in groups:
        cells = []
        for p in profiles.values():
            f, b = p.grouped(key).get(g, (0.0, 0.0))
            total = p.layer_sum_ms or 1.0
            cells.append(f"{f:,.0f} ms ({100 * f / total:.0f} %) | {b:,.0f} ms ({100 * b / total:.0f} %)")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
