#!/usr/bin/env python3
"""Cross-validation (`make cv`): every fold of a k-fold (stratified, seeded) or
leave-one-specimen-out protocol (grouped k-fold by specimen when there are many specimens) is
built as its own data folder (DATA_ROOT/fold-K: the fold is the test part, a validation part is
carved from the rest, only the training part is rotated), trained with SCHEDULE, evaluated and
reported into CV_DIR/fold-K/, then CV_DIR/README.md: per-fold and pooled MCA / ACA with 95 %
intervals and the pooled confusion matrix, beside the paper's cell-level figure. An interrupted
series resumes where it stopped. See docs/training.md."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, ledger, paper, schedules
from dri_hep2.experiment import cv
from dri_hep2.data import options as data_options
from dri_hep2.data import split
from dri_hep2.net import options


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", required=True, type=Path,
                    help="input folder (make's I3A=): any layout `make data` reads")
    # Every protocol is accepted here so that make's default PROTOCOL=cell gets the message
    # that says what to give instead (CVConfig), not argparse's list.
    ap.add_argument("--protocol", choices=split.PROTOCOLS, default="kfold",
                    help="kfold: stratified folds; loso: leave one specimen out (or whole "
                         "specimens in K groups); cell and specimen have no folds")
    ap.add_argument("--folds", type=int, default=None,
                    help=f"K (kfold default {ledger.CV_FOLDS}; loso default one fold per "
                         f"specimen up to {ledger.LOSO_MAX_FOLDS} specimens, else "
                         f"{ledger.CV_FOLDS} groups)")
    ap.add_argument("--net", default="dri", choices=paper.VARIANTS, help="variant (Table 3(a))")
    ap.add_argument("--schedule", default="paper", choices=schedules.SCHEDULES,
                    help="training schedule of every fold")
    ap.add_argument("--cv-dir", type=Path, help="output (default results/<net>-<protocol>)")
    ap.add_argument("--data-root", type=Path,
                    help="where the folds' data folders go (default data/cv/<cv-dir name>)")
    ap.add_argument("--seed", type=int, default=ledger.RANDOM_SEED,
                    help="seed of the folds, the validation parts, the key order and Caffe")
    cli.add_gpu(ap)
    cli.add_overrides(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    data_options.add_reader_arguments(ap)
    data_options.add_augment_arguments(ap)
    options.add_arguments(ap.add_argument_group("net knobs", "as for train.py (ASSUMPTIONS.md)"))
    args = ap.parse_args(argv)
    cfg = cv.CVConfig(source=args.source, protocol=args.protocol, folds=args.folds,
                      net=args.net, schedule=args.schedule, cv_dir=args.cv_dir,
                      data_root=args.data_root, gpus=args.gpu, seed=args.seed,
                      net_options=options.from_arguments(args),
                      build=data_options.build_kwargs(args), **cli.overrides(args))
    done = cv.run_cv(cfg, progress=not args.no_progress)
    if done is None:
        return cli.interrupted()
    print(f"cross-validation summary: {done.page}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
