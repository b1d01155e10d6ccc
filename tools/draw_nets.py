#!/usr/bin/env python3
"""Draw the DRI family with Caffe's drawing code: results/nets/<variant>.png per variant."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dri_hep2.caffe_env import REPO_ROOT  # noqa: E402
from dri_hep2.net import build, draw  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variant", choices=build.VARIANTS, action="append",
                    help="only this variant (repeatable; default: all four)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "nets",
                    help="output folder (default: results/nets)")
    ap.add_argument("--rankdir", choices=("TB", "LR", "BT", "RL"), default="TB",
                    help="graph direction (default: TB, top to bottom)")
    ap.add_argument("--format", default="png", help="png (default), svg or pdf")
    args = ap.parse_args(argv)
    for variant in args.variant or build.VARIANTS:
        print(draw.draw_variant(variant, args.out / f"{variant}.{args.format}", args.rankdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
