#!/usr/bin/env python3
"""Measure make predict's speed (`make bench-predict`, issue 20): the Caffe backend against the
onnxruntime backend on the same model and the same cells, in one run, and their ratio.

Both backends run through make predict's own code (dri_hep2.model.backends: the model loaded
once, the cells in batches), each in its own process, taking turns over --repeats rounds after
one cold pass. Prints, per batch size, each backend's cells/s (fastest pass and mean of the
timed passes), the cold pass, the 1-minute load average, the ratio Caffe / onnxruntime, and
how far the two backends' fused probabilities are apart (the comparison is fair only if they
compute the same thing).

Without --run-dir it needs nothing but the toolkit: a DRI with fresh, untrained weights (the
fillers', BatchNorm statistics measured on a few cells), its ONNX export (make export's code
and check) and a synthetic replica's cells, made in a scratch folder in about ten seconds.
The speed of a forward pass does not depend on trained weights. With --run-dir it times that
run's deploy net and snapshot and its export (exported into the scratch folder if RUN_DIR/export
is missing or of other weights). Examples:

    make bench-predict
    make bench-predict BENCH_ARGS="--batch 8,16,32,64,128 --repeats 3"
    make bench-predict BENCH_ARGS="--run-dir results/demo --images data/demo/synthetic_i3a --split test"
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

from dri_hep2 import cli
from dri_hep2.data.split import SPLITS
from dri_hep2.model import backends, predict_bench


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path,
                    help="a trained run (default: a fresh untrained DRI made for the timing)")
    ap.add_argument("--weights", type=Path, help="its .caffemodel (default: the newest)")
    ap.add_argument("--images", type=Path,
                    help="cells to time, any IMAGES make predict takes (default: a synthetic "
                         "I3A replica of 272 cells)")
    ap.add_argument("--split", choices=SPLITS, help="only this split of --images (I3A input)")
    ap.add_argument("--cells", type=int, default=256,
                    help="cells per pass (fewer cells are repeated; default 256)")
    ap.add_argument("--batch", default=str(backends.DEFAULT_BATCH),
                    help="batch size, or a comma-separated list to compare (default "
                         f"{backends.DEFAULT_BATCH}, make predict's)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--same-process", action="store_true",
                    help="both backends in this process, not one process each")
    ap.add_argument("--caffe-env", action="append", default=[], metavar="VAR=VALUE",
                    help="an environment variable for Caffe's process (repeatable), e.g. "
                         "OMP_NUM_THREADS=1, to measure a setting")
    ap.add_argument("--profile", action="store_true",
                    help="also time each layer type of one pass at the first batch size, in "
                         "both backends (where the difference comes from)")
    ap.add_argument("--json", type=Path, help="also write every figure to this file")
    args = ap.parse_args(argv)
    batches = [backends.parse_batch(b) for b in args.batch.split(",")]
    caffe_env = dict(v.split("=", 1) for v in args.caffe_env if "=" in v)
    if len(caffe_env) != len(args.caffe_env):
        ap.error("--caffe-env takes VAR=VALUE")

    print(f"bench-predict {datetime.datetime.now().isoformat(timespec='seconds')} on "
          f"{platform.node()} ({platform.processor() or platform.machine()}), load "
          f"{predict_bench.loadavg():.2f}")
    result = predict_bench.run(run_dir=args.run_dir, weights=args.weights, images=args.images,
                               split=args.split, cells=args.cells, batches=batches,
                               repeats=args.repeats, same_process=args.same_process,
                               profile=args.profile, caffe_env=caffe_env)
    print()
    print(result["rows_table"])
    print()
    if result["random_weights"]:
        print("Weights: fresh (untrained); the time of a pass does not depend on their values.")
    for batch, a in result["agreement"]["backends"].items():
        print(f"batch {batch}: fused probabilities of the two backends differ by at most "
              f"{a['max_abs_diff']:.2g}; {a['calls_differing']} of {result['cells']} calls "
              "differ")
    for name, diff in result["agreement"]["batch_sizes"].items():
        if len(batches) > 1:
            print(f"{predict_bench.LABELS[name]}: across batch sizes at most {diff:.2g} apart")
    ratios = result["ratios"]
    if backends.DEFAULT_BATCH in ratios:
        ratio = ratios[backends.DEFAULT_BATCH]
        print(f"Caffe / onnxruntime at make predict's batch ({backends.DEFAULT_BATCH}): "
              f"{ratio['best']:.3f} (fastest passes; means {ratio['mean']:.3f}); target >= 1: "
              f"{'met' if ratio['best'] >= 1.0 else 'not met'}")
    fastest = result["fastest"]
    print(f"each at its fastest batch: Caffe {fastest['caffe'][1]:.1f} cells/s (batch "
          f"{fastest['caffe'][0]}), onnxruntime {fastest['onnx'][1]:.1f} (batch "
          f"{fastest['onnx'][0]}): {fastest['caffe'][1] / fastest['onnx'][1]:.3f}")
    if "profile_table" in result:
        print()
        print(result["profile_table"])
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in result.items()}, indent=2,
                                        default=str) + "\n")
    return 0


if __name__ == "__main__":
    cli.entry(main)
