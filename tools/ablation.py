#!/usr/bin/env python3
"""Table 3(a) (`make ablation`): train and evaluate the four variants (Shallow Inception, SRI,
Inception, DRI) with one schedule, each in RESULTS/<variant>, then write RESULTS/ablation.md.
Each training resumes where it stopped, so an interrupted ablation goes on when rerun."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, evaluate, paper, report, schedules, train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--schedule", default="paper", choices=schedules.SCHEDULES,
                    help="one schedule for all four variants")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="data folder")
    ap.add_argument("--results", type=Path, default=Path("results"),
                    help="parent of the four run folders and of ablation.md")
    cli.add_gpu(ap)
    ap.add_argument("--variants", nargs="+", default=list(paper.VARIANTS),
                    choices=list(paper.VARIANTS), help="a subset to (re)run")
    args = ap.parse_args(argv)
    run_dirs = {v: args.results / v for v in paper.VARIANTS}
    for variant in args.variants:
        cfg = train.RunConfig(net=variant, schedule=args.schedule, data_dir=args.data_dir,
                              run_dir=run_dirs[variant], gpus=args.gpu)
        if train.train(cfg).outcome != "finished":
            print(f"{variant}: training interrupted; rerun to resume")
            return 130
        evaluate.evaluate(cfg.run_dir, args.data_dir, gpus=args.gpu)
        report.write_report(cfg.run_dir)
    page = report.write_ablation(run_dirs, args.results / report.ABLATION_PAGE, args.schedule)
    print(f"Table 3(a): {page}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
