#!/usr/bin/env python3
"""Train one variant with Caffe's `caffe train` CLI into RUN_DIR (`make train`).

Writes RUN_DIR/{solver,train_val,deploy}.prototxt for this run, then trains; a rerun resumes
from the newest RUN_DIR/snapshots/*.solverstate. Ctrl-C makes Caffe snapshot and stop; run the
same command again to go on. The full log is RUN_DIR/train.log (parsed into log.csv and
curves.png), the run manifest RUN_DIR/run_manifest.json. See docs/training.md."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, paper, schedules
from dri_hep2.experiment import train
from dri_hep2.net import options


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default="dri", choices=paper.VARIANTS, help="variant (Table 3(a))")
    ap.add_argument("--schedule", default="paper", choices=schedules.SCHEDULES,
                    help="paper: section 2.3 (290,000 iterations, a GPU job); short: the CPU "
                         "schedule of the demo (ASSUMPTIONS.md T1)")
    ap.add_argument("--data-dir", type=Path, default=Path("data"),
                    help="data folder of `make data` (lmdb/{train,val,test}, mean)")
    ap.add_argument("--run-dir", type=Path, help="output folder (default results/<net>)")
    cli.add_gpu(ap)
    cli.add_overrides(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    options.add_arguments(ap.add_argument_group(
        "net knobs", "our choices for the lost Fig. 1 / Fig. 2 (ASSUMPTIONS.md); make passes "
        "them as NET_ARGS=\"--aux-after dri_2_1,dri_2_3\""))
    args = ap.parse_args(argv)
    cfg = train.RunConfig(net=args.net, schedule=args.schedule, data_dir=args.data_dir,
                          run_dir=args.run_dir, gpus=args.gpu,
                          net_options=options.from_arguments(args), **cli.overrides(args))
    session = train.train(cfg, progress=not args.no_progress)
    if session.outcome == "interrupted":
        return cli.interrupted(f"interrupted at iteration {session.last_iteration}, snapshot in "
                               f"{cfg.run.snapshots}")
    print(f"trained {cfg.net} to iteration {session.last_iteration}: {cfg.run_dir}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
