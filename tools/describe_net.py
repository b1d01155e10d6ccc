#!/usr/bin/env python3
"""Load a net through Caffe and print Table 1 re-derived from it (per block, per branch:
kernel and count; cells that differ from the paper show the paper's value), blob shapes per
stage, learned parameters and FLOPs per image. `make describe NET=dri` runs it."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, paper
from dri_hep2.folders import REPO_ROOT
from dri_hep2.errors import UserError
from dri_hep2.net import describe
from dri_hep2.experiment import committed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--net", choices=paper.VARIANTS, default="dri",
                     help="a committed variant: prototxt/<NET>_deploy.prototxt (default: dri)")
    src.add_argument("--prototxt", type=Path,
                     help="any deploy or train_val prototxt (a train_val's Data layers need "
                          "their LMDBs to exist)")
    args = ap.parse_args(argv)
    path = args.prototxt or REPO_ROOT / committed.committed_paths(args.net)["deploy"]
    if not path.is_file():
        raise UserError(f"no prototxt at {path}" + ("" if args.prototxt else ": run 'make nets'"))
    title = paper.variant_title(args.net) if args.prototxt is None else path.name
    print(describe.report(describe.describe(path), f"{title} ({path.name})"))
    return 0


if __name__ == "__main__":
    cli.entry(main)
