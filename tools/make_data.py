#!/usr/bin/env python3
"""Build the Caffe data folder from a local copy of I3A Task 1 (or a synthetic replica):
the paper's 64/16/20 split, rotation augmentation of the training set (Table 2), LMDBs of
76x76 grey Datums, the mean image and manifest.json. Bad input stops the run before anything is
written; a rerun with the same inputs and parameters does nothing. See docs/data.md."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dri_hep2 import cli, ledger, paper
from dri_hep2.data import augment, build, i3a


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--i3a", required=True, type=Path,
                    help="I3A folder: contest layout (gt_training.csv + NNNNN.png) or "
                         "pre-split layout (training/ validation/ test/)")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="output folder")
    ap.add_argument("--protocol", choices=("cell", "specimen"), default="cell",
                    help="cell: the paper's stratified random split; specimen: no specimen in "
                         "two splits (needs a specimen column in the CSV)")
    ap.add_argument("--seed", type=int, default=ledger.RANDOM_SEED,
                    help="seed of the split and of the LMDB key order")
    ap.add_argument("--skip-bad", action="store_true",
                    help="leave out bad items instead of stopping; lists them in "
                         "DATA_DIR/skipped.csv")
    ap.add_argument("--step", type=int, default=paper.ROTATION_STEP_DEG,
                    help="rotation step in degrees for H, S, N, C, Nm (section 3.2)")
    ap.add_argument("--golgi-step", type=int, default=paper.GOLGI_ROTATION_STEP_DEG,
                    help="rotation step in degrees for Golgi (section 3.2)")
    ap.add_argument("--border", choices=tuple(augment.BORDERS), default="reflect101",
                    help="how rotation fills the corners (ASSUMPTIONS.md D2)")
    ap.add_argument("--stretch", action="store_true",
                    help="stretch each cell to 0..255 before augmentation (ASSUMPTIONS.md D4)")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    steps = tuple(args.golgi_step if c == paper.GOLGI else args.step
                  for c in range(paper.NUM_CLASSES))
    try:
        manifest = build.build_dataset(
            args.i3a, args.data_dir, protocol=args.protocol, seed=args.seed,
            skip_bad=args.skip_bad, steps=steps, border=args.border, stretch=args.stretch,
            workers=args.workers, progress=not args.quiet, force=args.force)
    except i3a.I3AError as exc:
        raise i3a.I3AError(f"{exc.reason}; nothing was written to {args.data_dir}", exc.file,
                           exc.line) from None
    print(json.dumps({k: manifest["splits"][k] for k in ("train", "val", "test")}, indent=1))
    print(f"data folder {args.data_dir} ready ({manifest['build_seconds']} s build, "
          f"{manifest['skipped']} skipped)")
    return 0


if __name__ == "__main__":
    cli.entry(main)
