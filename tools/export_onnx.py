#!/usr/bin/env python3
"""Export a run to ONNX (`make export`): RUN_DIR/export/model.onnx (the deploy net with the
newest snapshot, or --weights), model.json (class order, input size and preprocessing, output
names, weights), mean.npy and check.json.

The converter is the toolkit's own, on the `onnx` package (opset and IR version of ledger
U4); it knows the layer types of the four variants with Caffe's semantics and refuses any
other by name. Every export is checked on the spot: pycaffe and onnxruntime run the run's
test cells (or --check-images); the fused probabilities must agree within 1e-4 and every
label must be the same, else nothing is written and the tool exits 2."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli
from dri_hep2.model import onnx_export
from dri_hep2.experiment.run import RunDir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", type=Path, required=True, help="the run folder of make train")
    ap.add_argument("--weights", type=Path, help=".caffemodel (default: the newest snapshot)")
    ap.add_argument("--data-dir", type=Path,
                    help="data folder whose test LMDB checks the export (default: the one "
                         "the run trained on)")
    ap.add_argument("--check-images", type=Path,
                    help="check on these cells instead (folder, I3A folder or CSV)")
    ap.add_argument("--check-limit", type=int, help="check on the first N cells only")
    ap.add_argument("--out", type=Path, help="export folder (default RUN_DIR/export)")
    args = ap.parse_args(argv)
    info = onnx_export.export(args.run_dir, weights=args.weights, data_dir=args.data_dir,
                              check_images=args.check_images, check_limit=args.check_limit,
                              out=args.out)
    check = info["check"]
    speed = check["seconds_per_cell"]
    print(f"checked on {check['cells']} cells of {check['source']}: fused probabilities "
          f"within {check['fused_max_abs_diff']:.2g} of pycaffe (limit {check['threshold']:g}),"
          f" labels identical; per cell Caffe {1000 * speed['caffe']:.2f} ms, onnxruntime "
          f"{1000 * speed['onnxruntime']:.2f} ms")
    print(f"export: {args.out or RunDir(args.run_dir).export}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
