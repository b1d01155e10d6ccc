#!/usr/bin/env python3
"""One archive of a trained run (`make package`): RUN_DIR/package/<net>-<run>-iter<N>.tar.gz
with the deploy prototxt, the caffemodel, the mean (binaryproto and .npy), model.onnx and
model.json (exported and checked first when RUN_DIR/export is missing or of other weights),
and a model card in the BVLC model-zoo style (readme.md: what it is, data and protocol,
schedule, this run's metrics, the ledger choices in force, run manifest, licence; I3A itself
is not inside). A .sha256 file is written beside it."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, ledger
from dri_hep2.model import package


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", type=Path, required=True, help="the run folder of make train")
    ap.add_argument("--weights", type=Path, help=".caffemodel (default: the newest snapshot)")
    ap.add_argument("--data-dir", type=Path,
                    help="data folder for the export's check (default: the run's own)")
    ap.add_argument("--license", default=ledger.WEIGHTS_LICENSE,
                    help="licence the card gives the weights (ASSUMPTIONS.md U7)")
    ap.add_argument("--out", type=Path, help="archive path (default RUN_DIR/package/<name>"
                                             ".tar.gz)")
    args = ap.parse_args(argv)
    path = package.package(args.run_dir, weights=args.weights, data_dir=args.data_dir,
                           license=args.license, out=args.out)
    print(f"package: {path}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
