#!/usr/bin/env python3
"""Train one variant with Caffe's `caffe train` CLI into RUN_DIR (`make train`).

Writes RUN_DIR/{solver,train_val,deploy}.prototxt for this run, then trains; a rerun resumes
from the newest RUN_DIR/snapshots/*.solverstate. Ctrl-C makes Caffe snapshot and stop; run the
same command again to go on. The full log is RUN_DIR/train.log (parsed into log.csv and
curves.png), the run manifest RUN_DIR/run_manifest.json. See docs/training.md."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dri_hep2 import cli, train  # noqa: E402
from dri_hep2.net.build import VARIANTS  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default="dri", choices=VARIANTS, help="variant (Table 3(a))")
    ap.add_argument("--schedule", default="paper", choices=train.SCHEDULES,
                    help="paper: section 2.3 (290,000 iterations, a GPU job); short: the CPU "
                         "schedule of the demo (ASSUMPTIONS.md T1)")
    ap.add_argument("--data-dir", type=Path, default=Path("data"),
                    help="data folder of `make data` (lmdb/{train,val,test}, mean)")
    ap.add_argument("--run-dir", type=Path, help="output folder (default results/<net>)")
    ap.add_argument("--gpu", default="", help="empty: CPU; 0 or 0,1: Caffe's -gpu list")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    cfg = train.RunConfig(net=args.net, schedule=args.schedule, data_dir=args.data_dir,
                          run_dir=args.run_dir, gpu=args.gpu)
    session = train.train(cfg, progress=not args.no_progress)
    if session.outcome == "interrupted":
        print(f"interrupted at iteration {session.last_iteration}: snapshot in "
              f"{cfg.run_dir / train.SNAPSHOT_DIR}; run the same command again to resume")
        return 130
    print(f"trained {cfg.net} to iteration {session.last_iteration}: {cfg.run_dir}")
    return 0


if __name__ == "__main__":
    cli.run(main)
