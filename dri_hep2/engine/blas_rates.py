"""SGEMM rates, the reference a Caffe speed is read against: numpy's own BLAS, and OpenBLAS
through the `caffe` CLI (the caffe_cpu_gemm -> sgemm path of Caffe's convolutions) under a
given kernel setting. Used by `make doctor` (blas_report), `make bench-nets` (net.bench) and
tools/bench_engine.py. The `caffe` binary comes in as an argument.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path


def numpy_sgemm_gflops(size: int = 2048, repeats: int = 3) -> float:
    """numpy's own BLAS (the OpenBLAS its wheel bundles), float32 size^3, best of `repeats`."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size ** 3 / best / 1e9


def caffe_sgemm_gflops(caffe_bin: Path, env: dict[str, str], size: int = 2048,
                       iterations: int = 5) -> float:
    """SGEMM through the Caffe CLI: `caffe time` of a size^3 InnerProduct (no bias), the
    caffe_cpu_gemm -> OpenBLAS sgemm path of Caffe's convolutions, under `env`."""
    text = ("layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: %d dim: %d } } }\n"
            "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param {"
            " num_output: %d bias_term: false weight_filler { type: 'gaussian' std: 0.01 } } }\n"
            % (size, size, size))
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text)
    try:
        full = dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1")
        full.pop("OPENBLAS_CORETYPE", None)
        full.update(env)
        out = subprocess.run([str(caffe_bin), "time", "-model", f.name, "-iterations",
                              str(iterations)], capture_output=True, text=True, env=full)
    finally:
        os.unlink(f.name)
    m = re.search(r"\sip\s+forward: ([0-9.]+) ms", out.stderr + out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"caffe time of the SGEMM net failed ({out.returncode}): "
                           + (out.stderr + out.stdout)[-800:])
    return 2 * size ** 3 / (float(m.group(1)) / 1000) / 1e9
