#!/usr/bin/env python3
"""Build the Caffe data folder from a local copy of I3A Task 1 (or a synthetic replica), or of
another HEp-2 collection (ICPR 2012, I3A Task 2, a folder per class; the layout is detected and
printed, --format forces one): the paper's 64/16/20 split (or a specimen split, or one fold of a
k-fold / leave-one-specimen-out cross-validation), rotation augmentation of the training set
(Table 2), LMDBs of 76x76 grey Datums, the mean image and manifest.json with the class list.
Bad input stops the run before anything is written; a rerun with the same inputs and parameters
does nothing. See docs/data.md."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from dri_hep2 import cli, ledger
from dri_hep2.data import build, options, split
from dri_hep2.data.records import DataError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--i3a", required=True, type=Path,
                    help="input folder: I3A contest layout (gt_training.csv + NNNNN.png) or "
                         "pre-split layout (training/ validation/ test/), or another layout "
                         "of --format")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="output folder")
    ap.add_argument("--protocol", choices=split.PROTOCOLS, default="cell",
                    help="cell: the paper's stratified random split; specimen: no specimen in "
                         "two splits (needs a specimen column in the CSV); kfold: fold --fold "
                         "of --folds stratified folds is the test part; loso: leave one "
                         "specimen (or one group of specimens) out")
    ap.add_argument("--folds", type=int, default=None,
                    help=f"kfold / loso: number of folds (kfold default {ledger.CV_FOLDS}; "
                         f"loso default one per specimen up to {ledger.LOSO_MAX_FOLDS} "
                         f"specimens, else {ledger.CV_FOLDS} groups)")
    ap.add_argument("--fold", type=int, default=1, help="kfold / loso: the test fold (1-based)")
    ap.add_argument("--seed", type=int, default=ledger.RANDOM_SEED,
                    help="seed of the split and of the LMDB key order")
    options.add_reader_arguments(ap)
    options.add_augment_arguments(ap)
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        manifest = build.build_dataset(
            args.i3a, args.data_dir, protocol=args.protocol, seed=args.seed,
            folds=args.folds, fold=args.fold, workers=args.workers, progress=not args.quiet,
            force=args.force, **options.build_kwargs(args))
    except DataError as exc:
        raise DataError(f"{exc.reason}; nothing was written to {args.data_dir}", exc.file,
                        exc.line) from None
    print(json.dumps({k: manifest["splits"][k] for k in ("train", "val", "test")}, indent=1))
    classes = manifest.get("classes", {})
    if classes:
        print("classes (Caffe label: name): " + ", ".join(
            f"{i}: {n}" for i, n in enumerate(classes["names"])) + "; rotation steps "
            + ", ".join(map(str, manifest["parameters"]["rotation_steps_deg"])))
    p = manifest["parameters"]
    if p.get("folds"):
        print(f"{p['protocol']}: fold {p['fold']} of {p['folds']} is the test part")
    print(f"data folder {args.data_dir} ready ({manifest['build_seconds']} s build, "
          f"{manifest['skipped']} skipped)")
    return 0


if __name__ == "__main__":
    cli.entry(main)
