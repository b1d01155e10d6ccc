#!/usr/bin/env python3
"""Write a synthetic replica of I3A Task 1 in the contest layout (NNNNN.png, NNNNN_Mask.png,
gt_training.csv with intensity and specimen columns) plus montage.png, a sheet of sample cells
per class. For the demo, the tests and anyone without I3A (which may not be redistributed).
--format writes a replica of another layout instead (ICPR 2012, I3A Task 2, a folder per
class; docs/data.md)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from dri_hep2 import cli, ledger, paper
from dri_hep2.data import formats, replicas, synthetic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, type=Path, help="folder to write (replaced whole)")
    ap.add_argument("--format", choices=tuple(formats.FORMATS), default="i3a",
                    help="layout of the replica (default i3a: I3A Task 1's contest layout)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of I3A's class counts (1.0: 13,596 cells, Table 2); "
                         "icpr2012: of the contest's 1,457 cells; i3a-task2: specimens per "
                         "class = max(1, round(4 x scale)); folders: 200 x scale cells a class")
    ap.add_argument("--seed", type=int, default=ledger.RANDOM_SEED, help="random seed")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.scale <= 0:
        ap.error("--scale must be positive")
    start = time.perf_counter()
    if args.format == "i3a":
        out = synthetic.make_replica(args.out, scale=args.scale, seed=args.seed,
                                     workers=args.workers, progress=not args.quiet)
        counts = synthetic.class_counts(args.scale)
        per_class = ", ".join(f"{a} {n}" for a, n in zip(paper.CLASS_ABBREV, counts))
        print(f"wrote {sum(counts)} cells ({per_class}) to {out} in "
              f"{time.perf_counter() - start:.1f} s; samples: {out / 'montage.png'}")
        return 0
    if args.format == "icpr2012":
        out = replicas.make_icpr2012(args.out, scale=args.scale, seed=args.seed)
    elif args.format == "i3a-task2":
        out = replicas.make_task2(args.out, specimens_per_class=max(1, round(4 * args.scale)),
                                  seed=args.seed)
    else:
        out = replicas.make_folders(args.out, per_class=max(2, round(200 * args.scale)),
                                    seed=args.seed)
    cells = formats.read_cells(out, args.format, announce=None)
    per_class = ", ".join(f"{a} {sum(r.label == c for r in cells.records)}"
                          for c, a in enumerate(cells.classes.abbrev))
    print(f"wrote a {formats.FORMATS[args.format]} replica to {out}: {len(cells.records)} "
          f"cells ({per_class}) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    cli.entry(main)
