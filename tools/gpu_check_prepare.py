#!/usr/bin/env python3
"""Prepare, here on the CPU, the kit that tools/gpu_check.sh runs on a GPU machine: a small
synthetic data set as LMDBs, the four variants' nets and solvers, FLOP counts, the test
labels and a copy of the Caffe bundle (dri_hep2/experiment/gpu_kit.py says what is in it).
`make gpu-check-kit` runs it; docs/gpu.md has the one call for the lent GPU machine."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, ledger
from dri_hep2.experiment import gpu_kit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True, help="kit folder to write (replaced)")
    ap.add_argument("--bundle", type=Path, required=True,
                    help="Caffe bundle (dist/caffe-<id>.tar.xz, from `make bundle`) to copy in")
    ap.add_argument("--scale", type=float, default=0.05,
                    help="size of the synthetic replica, a fraction of I3A (default 0.05: "
                         "680 cells, about 1,800 training images)")
    ap.add_argument("--seed", type=int, default=ledger.RANDOM_SEED)
    ap.add_argument("--gpu-iters", type=int, default=2000, help="GPU training iterations")
    ap.add_argument("--gpu-test-interval", type=int, default=500)
    ap.add_argument("--cpu-iters", type=int, default=8, help="CPU-mode training iterations")
    ap.add_argument("--cpu-test-interval", type=int, default=4)
    args = ap.parse_args(argv)
    out, kit = gpu_kit.prepare(args.out, args.bundle, args.scale, args.seed,
                               {"gpu": (args.gpu_iters, args.gpu_test_interval),
                                "cpu": (args.cpu_iters, args.cpu_test_interval)})
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    counts = kit["counts"]
    print(f"gpu-check kit: {out} ({size / 2**20:.1f} MiB; train {counts['train']}, "
          f"val {counts['val']}, test {counts['test']} images)")
    return 0


if __name__ == "__main__":
    cli.entry(main)
