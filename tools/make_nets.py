#!/usr/bin/env python3
"""Write the DRI family's prototxts and solvers (prototxt/, solver/) and, unless --no-draw,
the net diagrams (results/nets/<variant>.png). `make nets` runs it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dri_hep2 import paper  # noqa: E402
from dri_hep2.caffe_env import REPO_ROOT  # noqa: E402
from dri_hep2.net import build, generate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, default=REPO_ROOT,
                    help="folder to write prototxt/, solver/ and results/nets/ under "
                         "(default: the repository)")
    ap.add_argument("--variant", choices=build.VARIANTS, action="append",
                    help="only this variant (repeatable; default: all four)")
    ap.add_argument("--no-draw", action="store_true", help="skip the PNG diagrams")
    ap.add_argument("--shortcut", choices=paper.SHORTCUTS, default=paper.SHORTCUT,
                    help=f"shortcut between blobs of different widths (ASSUMPTIONS.md N2; "
                         f"default {paper.SHORTCUT}); a non-default value makes the files "
                         f"differ from the committed ones, so use it with --root")
    ap.add_argument("--dri-2-3-1x1", type=int, default=None,
                    help="DRI 2-3's 1x1 width in place of the printed 244 (ASSUMPTIONS.md N12)")
    args = ap.parse_args(argv)
    variants = args.variant or build.VARIANTS
    options = dict(shortcut=args.shortcut, dri_2_3_1x1=args.dri_2_3_1x1)
    for path in generate.generate(args.root, variants, **options):
        print(path)
    if not args.no_draw:
        from dri_hep2.net import draw
        for variant in variants:
            print(draw.draw_variant(variant, args.root / "results" / "nets" / f"{variant}.png",
                                    **options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
