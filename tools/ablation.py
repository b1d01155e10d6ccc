#!/usr/bin/env python3
"""Table 3(a) (`make ablation`): train and evaluate the four variants (Shallow Inception, SRI,
Inception, DRI) with one schedule, each in RESULTS/<variant> (with --seeds N: a seed series
RESULTS/<variant>-seeds/seed-1..N each), then write RESULTS/ablation.md: MCA and ACA with 95 %
intervals beside the paper's column, McNemar's test of each variant against DRI, the spread
over seeds. Each training resumes where it stopped, so an interrupted ablation goes on when
rerun."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, paper, schedules
from dri_hep2.experiment import experiments


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--schedule", default="paper", choices=schedules.SCHEDULES,
                    help="one schedule for all four variants")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="data folder")
    ap.add_argument("--results", type=Path, default=Path("results"),
                    help="parent of the run folders and of ablation.md")
    cli.add_gpu(ap)
    cli.add_overrides(ap)
    ap.add_argument("--variants", nargs="+", default=list(paper.VARIANTS),
                    choices=list(paper.VARIANTS), help="a subset to (re)run")
    ap.add_argument("--seeds", type=int, default=None,
                    help="train each variant as a series of this many Caffe seeds")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    page = experiments.run_ablation(args.schedule, args.data_dir, args.results, args.gpu,
                                    args.variants, args.seeds, progress=not args.no_progress,
                                    **cli.overrides(args))
    if page is None:
        return cli.INTERRUPTED      # run_ablation has said which variant stopped
    print(f"Table 3(a): {page}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
