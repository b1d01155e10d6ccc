#!/usr/bin/env python3
"""Time training of each DRI variant with `caffe time` (TRAIN phase, batch 24 by default)
and print ms per forward+backward, the achieved GFLOP/s, and their ratio to the machine's
best sgemm GFLOP/s measured in the same run (the better of Caffe's BLAS and numpy's); then
where DRI's iteration goes, forward and backward, by layer type and by stage.
`make bench-nets` runs it; tools/bench_engine.py compares Caffe builds (docs/engine.md)."""
from __future__ import annotations

import argparse
import os

from dri_hep2 import cli, paper
from dri_hep2.net import bench, profile


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variant", choices=paper.VARIANTS, action="append",
                    help="only this variant (repeatable; default: all four)")
    ap.add_argument("--batch", type=int, default=paper.BATCH_SIZE,
                    help=f"training batch (default: the paper's {paper.BATCH_SIZE})")
    ap.add_argument("--iterations", type=int, default=3,
                    help="timed forward+backward passes per variant (default: 3)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run `caffe time` this many times per variant and keep the fastest "
                         "(other processes on a shared machine only ever slow a run down)")
    cli.add_gpu(ap, help="time on this GPU (needs a CUDA build); the sgemm stays on CPU")
    args = ap.parse_args(argv)
    variants = args.variant or list(paper.VARIANTS)
    sgemm, caffe_rate, numpy_rate = bench.best_sgemm()
    print(f"sgemm {bench.SGEMM_SIZE}^3: Caffe's BLAS (InnerProduct forward) {caffe_rate:.1f}, "
          f"numpy's {numpy_rate:.1f} GFLOP/s (best {sgemm:.1f}); OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}, {os.cpu_count()} CPUs", flush=True)
    timings = []
    for variant in variants:
        runs = [bench.caffe_time(variant, args.batch, args.iterations, args.gpu)
                for _ in range(args.repeats)]
        timings.append(min(runs, key=lambda t: t.ms_per_iter))
        print(f"  {variant}: {timings[-1].ms_per_iter:.0f} ms / iter", flush=True)
    print(bench.table(timings, sgemm))
    for t in timings:
        if t.variant == "dri" and t.profile:
            for key in ("type", "stage"):
                print(f"\nDRI's iteration by layer {key} (share of the layer times' sum):\n"
                      + profile.shares_table({"DRI": t.profile}, key))
    return 0


if __name__ == "__main__":
    cli.entry(main)
