#!/usr/bin/env python3
"""What the net looks at (`make explain`): for test cells of each class, correctly and wrongly
called, the gradient of the fused prediction with respect to the input and Grad-CAM on a
block's output (default: the last block), both from Caffe's own backward pass on the deploy
net. Writes RUN_DIR/explain/<class>.png (cell, gradient map, overlay, Grad-CAM, overlay) and
explain.json; the run's results page links them (make report)."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, ledger
from dri_hep2.model import explain
from dri_hep2.experiment import report
from dri_hep2.data.split import SPLITS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", type=Path, required=True, help="the run folder of make train")
    ap.add_argument("--weights", type=Path, help=".caffemodel (default: the newest snapshot)")
    ap.add_argument("--data-dir", type=Path,
                    help="data folder (default: the one the run trained on)")
    ap.add_argument("--split", default="test", choices=SPLITS, help="cells to explain")
    ap.add_argument("--layer", help="blob for Grad-CAM (default: the last block's output, "
                                    "e.g. dri_3_2/output; ASSUMPTIONS.md U6)")
    ap.add_argument("--cells", type=int, default=ledger.EXPLAIN_CELLS,
                    help="cells per class and outcome (the most confident)")
    cli.add_gpu(ap, help="empty: CPU; a GPU id")
    args = ap.parse_args(argv)
    summary = explain.explain(args.run_dir, data_dir=args.data_dir, weights=args.weights,
                              layer=args.layer, cells=args.cells, split=args.split,
                              gpus=args.gpu)
    report.write_report(args.run_dir)
    print(f"Grad-CAM at {summary['layer']}; montages: {summary['folder']}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
