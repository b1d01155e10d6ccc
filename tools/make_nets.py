#!/usr/bin/env python3
"""Write the DRI family's prototxts and solvers (prototxt/, solver/) and, unless --no-draw,
the net diagrams drawn by Caffe's own drawing code (results/nets/<variant>.png). `make nets`
runs it; `--draw-only --format svg --rankdir LR` redraws the diagrams alone."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, ledger, paper
from dri_hep2.caffe_env import REPO_ROOT
from dri_hep2.net import generate


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
    ap.add_argument("--shortcut", choices=ledger.SHORTCUTS, default=ledger.SHORTCUT,
                    help=f"shortcut between blobs of different widths (ASSUMPTIONS.md N2; "
                         f"default {ledger.SHORTCUT}); a non-default value makes the files "
                         f"differ from the committed ones, so use it with --root")
    ap.add_argument("--dri-2-3-1x1", type=int, default=None,
                    help="DRI 2-3's 1x1 width in place of the printed 244 (ASSUMPTIONS.md N12)")
    args = ap.parse_args(argv)
    variants = args.variant or list(paper.VARIANTS)
    options = dict(shortcut=args.shortcut, dri_2_3_1x1=args.dri_2_3_1x1)
    if not args.draw_only:
        for path in generate.generate(args.root, variants, **options):
            print(path)
    if not args.no_draw:
        from dri_hep2.net import draw
        for variant in variants:
            out = args.root / "results" / "nets" / f"{variant}.{args.format}"
            print(draw.draw_variant(variant, out, args.rankdir, **options))
    return 0


if __name__ == "__main__":
    cli.entry(main)
