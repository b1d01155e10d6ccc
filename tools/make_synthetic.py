#!/usr/bin/env python3
"""Write a synthetic replica of I3A Task 1 in the contest layout (NNNNN.png, NNNNN_Mask.png,
gt_training.csv with intensity and specimen columns) plus montage.png, a sheet of sample cells
per class. For the demo, the tests and anyone without I3A (which may not be redistributed)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from dri_hep2 import cli, ledger, paper
from dri_hep2.data import synthetic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, type=Path, help="folder to write (replaced whole)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of I3A's class counts (1.0: 13,596 cells, Table 2)")
    ap.add_argument("--seed", type=int, default=ledger.RANDOM_SEED, help="random seed")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be positive")
    start = time.perf_counter()
    out = synthetic.make_replica(args.out, scale=args.scale, seed=args.seed,
                                 workers=args.workers, progress=not args.quiet)
    counts = synthetic.class_counts(args.scale)
    per_class = ", ".join(f"{a} {n}" for a, n in zip(paper.CLASS_ABBREV, counts))
    print(f"wrote {sum(counts)} cells ({per_class}) to {out} in "
          f"{time.perf_counter() - start:.1f} s; samples: {out / 'montage.png'}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
