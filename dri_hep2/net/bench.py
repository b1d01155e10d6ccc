"""Training speed of the DRI family on this machine, against the machine's best sgemm.

Each variant's training net (build.benchmark: train_val with Input layers, batch 24) is timed
by `caffe time`, which builds the TRAIN phase and reports the average forward + backward
milliseconds and each layer's share (net.profile). The FLOPs of one iteration come from
describe (conv and fc only, 2 x multiply-adds): forward, plus the two gradients of backward
(data and weights), except that conv1/7x7_s2 needs no data gradient. The sgemm reference is
the better of a 2048 x 2048 x 2048 InnerProduct forward in pycaffe (the very BLAS call,
caffe_cpu_gemm -> OpenBLAS sgemm, through which Caffe's convolutions run) and numpy's own
BLAS on the same product, both measured in the same run: what this CPU can do, not what a
BLAS that fell back to a generic kernel makes of it (ledger B11).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .. import paper
from ..gpus import Gpus
from ..engine.caffe_env import caffe_binary
from . import build, describe, profile, proto
from .proto import L, caffe

SGEMM_SIZE = 2048
# Issue 20's targets for DRI's CPU training iteration (docs/engine.md sections 5-6): its rate
# as a share of the machine's best SGEMM, and `caffe train`'s iteration over `caffe time`'s.
SGEMM_SHARE_TARGET = 0.6
TRAIN_OVER_TIME_TARGET = 1.1


@dataclass
class Timing:
    variant: str
    batch_size: int
    ms_per_iter: float
    gflop_per_iter: float
    params: int
    forward_mflop_per_image: float
    profile: profile.Profile | None = None

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
    """Run `caffe time` on the variant's training net; FLOPs from describe, the per-layer
    times in `profile`."""
    d = describe.describe(net_param=build.deploy(variant))
    prof = profile.caffe_time(caffe_binary(), build.benchmark(variant, batch_size), iterations,
                              gpu=gpus.first)
    return Timing(variant, batch_size, prof.total_ms,
                  batch_size * train_flops_per_image(d) / 1e9, d.params, d.flops / 1e6, prof)


def best_sgemm() -> tuple[float, float, float]:
    """(best, Caffe's, numpy's) sgemm GFLOP/s, measured now."""
    from ..engine import blas_rates

    caffe_rate, numpy_rate = sgemm_gflops(), blas_rates.numpy_sgemm_gflops(SGEMM_SIZE)
    return max(caffe_rate, numpy_rate), caffe_rate, numpy_rate


def table(timings: list[Timing], sgemm: float) -> str:
    lines = [f"| net | batch | ms / iter (fwd+bwd) | GFLOP / iter | GFLOP/s | "
             f"/ best sgemm ({sgemm:.1f} GFLOP/s) | params | MFLOP / image (fwd) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in timings:
        lines.append(f"| {paper.VARIANTS[t.variant].title} | {t.batch_size} | "
                     f"{t.ms_per_iter:,.0f} | {t.gflop_per_iter:.1f} | {t.gflops:.1f} | "
                     f"{t.gflops / sgemm:.2f} | {t.params:,} | {t.forward_mflop_per_image:,.0f} |")
    return "\n".join(lines)


def target_verdict(what: str, value: float, target: float, at_least: bool) -> str:
    """One line saying whether `value` meets `target` (>= when at_least, else <=), and by how
    much it misses where it does not."""
    met = value >= target if at_least else value <= target
    text = f"{what}: {value:.2f} (target {'>=' if at_least else '<='} {target:g})"
    if met:
        return text + ": met"
    return text + f": not met, {abs(target - value):.2f} {'short' if at_least else 'over'}"
