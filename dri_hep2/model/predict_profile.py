"""Where a forward pass of make predict's two backends spends its time, per layer type
(`make bench-predict BENCH_ARGS=--profile`): the reason behind the ratio when it is below 1.

Caffe: each layer of the net that runs (the folded one, caffe_fold) timed alone with pycaffe's
`_forward(i, i)` on one batch, fastest of `repeats`, summed per layer type. The sum misses what
a whole pass adds between layers (threads waking, caches), so it is a little below a pass.
onnxruntime: its own profiler (SessionOptions.enable_profiling) on a second session of the same
model.onnx, each node's kernel time, fastest of `repeats` runs, summed per operator type. Its operators are those
of its optimised graph: convolutions with BatchNorm and activations fused in, NCHWc layout
reorders of its own, so the two lists name different things; both sum to one pass.
"""
from __future__ import annotations

import bisect
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def caffe_profile(model, views: np.ndarray, batch: int, repeats: int) -> dict[str, float]:
    """ms per layer type of one forward pass of `batch` cells through model.net."""
    net = model.net
    x = model.transform(views[:batch][:, None])
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data[...] = x
    net.forward()                      # the shapes allocated before any layer is timed
    best = [float("inf")] * len(net.layers)
    for _ in range(repeats):
        for i in range(len(net.layers)):
            t = time.perf_counter()
            net._forward(i, i)
            best[i] = min(best[i], time.perf_counter() - t)
    per_type: dict[str, float] = defaultdict(float)
    for layer, seconds in zip(net.layers, best):
        per_type[layer.type] += 1000 * seconds
    return dict(per_type)


def onnx_profile(model, views: np.ndarray, batch: int, repeats: int) -> dict[str, float]:
    """ms per operator type of one run of `batch` cells, onnxruntime's profiler."""
    from .onnx_model import onnxruntime
    ort = onnxruntime()
    x = model.transform(views[:batch][:, None])
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(model.folder.model), sess_options=options,
                                       providers=["CPUExecutionProvider"])
        names = list(model.branch_outputs.values())
        for _ in range(repeats + 1):
            session.run(names, {model.input_name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    # Each node's fastest run, as in Caffe's profile; the first run (allocation, first-run
    # work) left out. A node's events fall between its run's start and the next run's.
    starts = sorted(e["ts"] for e in events
                    if e.get("cat") == "Session" and e.get("name") == "model_run")
    best: dict[tuple[str, str], float] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        if bisect.bisect_right(starts, e["ts"]) <= 1:
            continue
        key = (e["args"]["op_name"], e["name"])
        best[key] = min(best.get(key, float("inf")), e["dur"] / 1000)
    per_type: dict[str, float] = defaultdict(float)
    for (op, _), ms in best.items():
        per_type[op] += ms
    return dict(per_type)


def profile(model, views: np.ndarray, batch: int, repeats: int) -> dict[str, float]:
    """The profile of either backend."""
    run = caffe_profile if model.backend == "caffe" else onnx_profile
    return run(model, views, batch, repeats)


def table(profiles: dict[str, dict[str, float]], labels: dict[str, str], batch: int) -> str:
    """Both profiles as one markdown table, largest first, with each one's share."""
    lines = [f"Per layer type, one pass of batch {batch}, ms (share):", "",
             "| " + " | ".join(f"{labels[b]} layer | ms" for b in profiles) + " |",
             "|" + "---|---:|" * len(profiles)]
    ordered = {b: sorted(p.items(), key=lambda kv: -kv[1]) for b, p in profiles.items()}
    for i in range(max(len(v) for v in ordered.values())):
        cells = []
        for b, items in ordered.items():
            total = sum(profiles[b].values()) or 1.0
            cells += ([items[i][0], f"{items[i][1]:.1f} ({100 * items[i][1] / total:.0f} %)"]
                      if i < len(items) else ["", ""])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| " + " | ".join(f"sum | {sum(p.values()):.1f}" for p in profiles.values())
                 + " |")
    return "\n".join(lines)
