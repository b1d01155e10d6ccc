#!/usr/bin/env python3
"""Write the DRI family's prototxts and solvers (prototxt/, solver/) and, unless --no-draw,
the net diagrams drawn by Caffe's own drawing code (results/nets/<variant>.png). `make nets`
runs it; `--draw-only --format svg --rankdir LR` redraws the diagrams alone."""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from dri_hep2 import cli, paper
from dri_hep2.folders import REPO_ROOT
from dri_hep2.experiment import committed
from dri_hep2.net import options


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, default=REPO_ROOT,
                    help="folder to write prototxt/, solver/ and results/nets/ under "
                         "(default: the repository)")
    ap.add_argument("--variant", choices=paper.VARIANTS, action="append",
                    help="only this variant (repeatable; default: all four)")
    draw = ap.add_mutually_exclusive_group()
    draw.add_argument("--no-draw", action="store_true", help="skip the diagrams")
    draw.add_argument("--draw-only", action="store_true",
                      help="only the diagrams, no prototxt or solver")
    ap.add_argument("--format", default="png", choices=("png", "svg", "pdf"),
                    help="diagram format (default: png, the committed one)")
    ap.add_argument("--rankdir", choices=("TB", "LR", "BT", "RL"), default="TB",
                    help="diagram direction (default: TB, top to bottom)")
    knobs = ap.add_argument_group(
        "net knobs", "our choices for the lost Fig. 1 / Fig. 2 (ASSUMPTIONS.md); a non-default "
        "value makes the files differ from the committed ones, so use it with --root")
    options.add_arguments(knobs)
    args = ap.parse_args(argv)
    variants = args.variant or list(paper.VARIANTS)
    chosen = asdict(options.from_arguments(args))
    if not args.draw_only:
        for path in committed.generate(args.root, variants, **chosen):
            print(path)
    if not args.no_draw:
        from dri_hep2.net import draw
        for variant in variants:
            out = args.root / "results" / "nets" / f"{variant}.{args.format}"
            print(draw.draw_variant(variant, out, args.rankdir, **chosen))
    return 0


if __name__ == "__main__":
    cli.entry(main)
