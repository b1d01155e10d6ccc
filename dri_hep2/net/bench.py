"""Training speed of the DRI family on this machine, against the machine's own sgemm.

Each variant's training net (build.benchmark: train_val with Input layers, batch 24) is timed
by `caffe time`, which builds the TRAIN phase and reports the average forward + backward
milliseconds. The FLOPs of one iteration come from describe (conv and fc only, 2 x
multiply-adds): forward, plus the two gradients of backward (data and weights), except that
conv1/7x7_s2 needs no data gradient. The sgemm reference is a 2048 x 2048 x 2048
InnerProduct forward in pycaffe, i.e. the very BLAS call (caffe_cpu_gemm -> OpenBLAS sgemm)
through which Caffe's convolutions run, in the same process environment and run.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass

from .. import paper
from ..caffe_env import Gpus, caffe_binary
from . import build, describe, proto
from .proto import L, caffe

SGEMM_SIZE = 2048
_AVERAGE = re.compile(r"Average Forward-Backward:\s*([0-9.]+)\s*ms")


@dataclass
class Timing:
    variant: str
    batch_size: int
    ms_per_iter: float
    gflop_per_iter: float
    params: int
    forward_mflop_per_image: float

    @property
    def gflops(self) -> float:
        return self.gflop_per_iter / (self.ms_per_iter / 1000)


def train_flops_per_image(d: describe.Description, first_conv: str = "conv1/7x7_s2") -> int:
    """Forward + backward FLOPs of one training image: 3 x forward of conv / fc, less the
    data gradient of the first convolution (Caffe does not propagate into `data`)."""
    return 3 * d.flops - d.layer_flops[first_conv]


def sgemm_gflops(size: int = SGEMM_SIZE, repeats: int = 5) -> float:
    """Best-of-`repeats` GFLOP/s of a size^3 single-precision GEMM run by Caffe's BLAS."""
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[size, size]))
    ns.y = L.InnerProduct(ns.x, num_output=size, bias_term=False,
                          weight_filler=dict(type="gaussian", std=0.01))
    net = proto.load(ns.to_proto())
    net.blobs["x"].data[...] = 1.0
    net.forward()   # warm-up: page in the buffers, start BLAS threads
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        net.forward()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def caffe_time(variant: str, batch_size: int = paper.BATCH_SIZE, iterations: int = 3,
               gpus: Gpus = Gpus()) -> Timing:
    """Run `caffe time` on the variant's training net; FLOPs from describe."""
    d = describe.describe(net_param=build.deploy(variant))
    # caffe time reports through glog's INFO log; make sure it reaches us.
    env = dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1")
    with proto.temporary(build.benchmark(variant, batch_size)) as model:
        cmd = [str(caffe_binary()), "time", "-model", str(model), "-iterations", str(iterations)]
        if gpus:
            cmd += ["-gpu", str(gpus.first)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    match = _AVERAGE.search(out.stderr + out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"caffe time failed for {variant} (exit {out.returncode}):\n"
                           + (out.stderr + out.stdout)[-2000:])
    return Timing(variant, batch_size, float(match.group(1)),
                  batch_size * train_flops_per_image(d) / 1e9, d.params, d.flops / 1e6)


def table(timings: list[Timing], sgemm: float) -> str:
    lines = [f"| net | batch | ms / iter (fwd+bwd) | GFLOP / iter | GFLOP/s | "
             f"/ sgemm ({sgemm:.1f} GFLOP/s) | params | MFLOP / image (fwd) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in timings:
        lines.append(f"| {paper.VARIANTS[t.variant].title} | {t.batch_size} | "
                     f"{t.ms_per_iter:,.0f} | {t.gflop_per_iter:.1f} | {t.gflops:.1f} | "
                     f"{t.gflops / sgemm:.2f} | {t.params:,} | {t.forward_mflop_per_image:,.0f} |")
    return "\n".join(lines)
