#!/usr/bin/env python3
"""Check exact resume (`make resume-check`): train once straight, then TRIALS times with KILLS
SIGKILLs at random moments (the first one while a snapshot is being written, with
--during-write) and a rerun to the end; every final .caffemodel must equal the straight
run's, byte for byte. Exit 1 when one differs. Needs the patched build (patch 12; the stock
build, CAFFE_STOCK=1, is not exact: docs/training.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, paper, schedules
from dri_hep2.errors import UserError
from dri_hep2.experiment import resume_check


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check-dir", type=Path, default=Path("results/resume-check"),
                    help="the check's own folder: straight/, trial-K/, resume_check.json")
    ap.add_argument("--net", default="shallow_inception", choices=paper.VARIANTS)
    ap.add_argument("--schedule", default="short", choices=schedules.SCHEDULES)
    ap.add_argument("--data-dir", type=Path, default=Path("data/demo"),
                    help="data folder of `make data` (default: the demo's)")
    cli.add_overrides(ap)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--kills", type=int, default=2, help="SIGKILLs per trial")
    ap.add_argument("--during-write", action="store_true",
                    help="each trial's first kill while a snapshot file is being written")
    ap.add_argument("--seed", type=int, help="seed of the kill times (default: random)")
    args = ap.parse_args(argv)
    if not (args.data_dir / "lmdb").is_dir():
        raise UserError(f"no data folder {args.data_dir}: run 'make demo' or 'make data' "
                            "first")
    train_args = ["--net", args.net, "--schedule", args.schedule,
                  "--data-dir", str(args.data_dir.resolve())]
    for flag, value in (("--max-iter", args.max_iter), ("--snapshot", args.snapshot)):
        if value is not None:
            train_args += [flag, str(value)]
    folder = resume_check.CheckDir(args.check_dir)
    _, trials = resume_check.check(folder, train_args, trials=args.trials, kills=args.kills,
                                   during_write=args.during_write, seed=args.seed)
    same = sum(t.identical for t in trials)
    print(f"{same} of {len(trials)} trials identical to the straight run ({folder.summary})")
    return 0 if same == len(trials) else 1


if __name__ == "__main__":
    cli.entry(main)
