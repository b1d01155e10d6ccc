#!/usr/bin/env python3
"""Classify cell images with a trained run (`make predict`): one row per cell with the
probabilities of FC1, FC2, FC3, the fused probabilities (the sum layer, divided by 3) and the
fused label; one call per specimen where specimens are known; with ground truth the metrics
of `make eval`, cell and specimen level.

IMAGES is a folder of cell images (PNG, TIFF or BMP, 8 or 16 bit; one sub-folder per
specimen, if any), an I3A folder (contest layout with gt_training.csv, or training/
validation/ test/), a CSV with a header and the columns file (relative to the CSV's folder)
and optionally id, label, specimen, or one image file. Every image is decoded and checked
before anything is written; a bad one stops the tool with its name (--skip-bad lists it in
OUT/skipped.csv instead).

Writes OUT (default RUN_DIR/predict/<name of IMAGES>[-<split>][-onnx]): predictions.csv,
specimens.csv, metrics.json (ground truth only), predict.json (what ran, how fast) and
skipped.csv. --backend onnx runs RUN_DIR/export (make export) or --model <folder> in
onnxruntime, with no Caffe at all. docs/using.md describes the columns."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, ledger
from dri_hep2.model import backends, predict, specimens
from dri_hep2.data.split import SPLITS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True,
                    help="folder of cell images, I3A folder, CSV listing files, or one image")
    ap.add_argument("--run-dir", type=Path, help="the run folder of make train")
    ap.add_argument("--model", type=Path,
                    help="an export folder or unpacked package (--backend onnx, no RUN_DIR "
                         "needed)")
    ap.add_argument("--out", type=Path,
                    help="output folder (default RUN_DIR/predict/<name>[-<split>][-onnx])")
    ap.add_argument("--backend", default="caffe", choices=backends.BACKENDS,
                    help="caffe: the deploy net and a snapshot in pycaffe; onnx: model.onnx in "
                         "onnxruntime (make export first)")
    ap.add_argument("--weights", type=Path,
                    help=".caffemodel for the Caffe backend (default: the newest snapshot)")
    ap.add_argument("--split", choices=SPLITS,
                    help="only the cells of this split of the run's data folder (I3A input)")
    ap.add_argument("--data-dir", type=Path,
                    help="the run's data folder, for --split (default: the one it trained on)")
    ap.add_argument("--batch", "--batch-size", dest="batch", default=backends.DEFAULT_BATCH,
                    help=f"cells per forward pass (default {backends.DEFAULT_BATCH}, the "
                         "fastest measured; any size gives the same predictions)")
    ap.add_argument("--specimen-rule", default=ledger.SPECIMEN_RULE,
                    choices=specimens.SPECIMEN_RULES,
                    help="one call per specimen: mean of the fused probabilities, or the "
                         "majority of the cells' calls (ASSUMPTIONS.md U2)")
    ap.add_argument("--skip-bad", action="store_true",
                    help="leave unreadable files out and list them in OUT/skipped.csv")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    cli.add_gpu(ap, help="Caffe backend: empty for the CPU, a GPU id")
    args = ap.parse_args(argv)
    batch = backends.parse_batch(args.batch)    # a bad value: one line, exit 2
    summary = predict.predict(
        args.images, run_dir=args.run_dir, model_dir=args.model, out=args.out,
        backend=args.backend, weights=args.weights, gpus=args.gpu, split=args.split,
        data_dir=args.data_dir, batch_size=batch, specimen_rule=args.specimen_rule,
        skip_bad=args.skip_bad, progress=not args.no_progress)
    line = (f"{summary['n']} cells ({summary['backend']}, {summary['cells_per_second']} "
            f"cells/s)")
    if summary.get("mca") is not None:
        line += f": MCA {100 * summary['mca']:.2f} %, ACA {100 * summary['aca']:.2f} %"
        if summary.get("specimen_mca") is not None:
            line += (f"; {summary['specimens']} specimens: MCA "
                     f"{100 * summary['specimen_mca']:.2f} %")
    if summary["skipped"]:
        line += f"; {summary['skipped']} skipped (skipped.csv)"
    print(line)
    print(f"predictions: {summary['out']}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
