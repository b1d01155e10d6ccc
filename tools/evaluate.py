#!/usr/bin/env python3
"""Evaluate a run on the test split (`make eval`): the deploy net with the newest snapshot (or
--weights) over DATA_DIR/lmdb/test; FC1, FC2, FC3 from one forward pass, the Table 3(b)
fusions DRI3, DRI1+3, DRI2+3, DRI1+2+3, MCA / ACA, per-class rates and the confusion matrix.
Writes RUN_DIR/eval.json, then the report (eval.md, confusion.png, curves.png, README.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli
from dri_hep2.experiment import evaluate, report
from dri_hep2.data.split import SPLITS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", type=Path, required=True, help="the run folder of make train")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="data folder")
    ap.add_argument("--weights", type=Path, help=".caffemodel (default: the newest snapshot)")
    ap.add_argument("--split", default="test", choices=SPLITS,
                    help="LMDB to evaluate (the paper reports the test split)")
    cli.add_gpu(ap, help="empty: CPU; a GPU id (of a list like 0,1 the first is used)")
    args = ap.parse_args(argv)
    result = evaluate.evaluate(args.run_dir, args.data_dir, weights=args.weights,
                               split=args.split, gpus=args.gpu)
    page = report.write_report(args.run_dir)
    print(f"{result['net']} @ iteration {result['iteration']} on {result['n']} {args.split} "
          f"cells: {report.headline(result)} (DRI{result['combo']}, 95 % intervals); MCA "
          + ", ".join(f"DRI{c} {100 * s['mca']:.2f}" for c, s in result["combos"].items()))
    print(f"report: {page}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
