"""The knobs of a data build as command-line options, shared by `make data`
(tools/make_data.py) and `make cv` (tools/cv.py), which builds one data folder per fold."""
from __future__ import annotations

import argparse

from .. import ledger, paper
from . import augment, formats
from .records import ReaderOptions


def _steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--steps {text!r}: give whole degrees, comma "
                                         "separated, one per class in class-list order") from None


def add_reader_arguments(ap) -> None:
    """Which layout to read, and the knobs of the readers."""
    ap.add_argument("--format", choices=("auto", *formats.FORMATS), default="auto",
                    help="layout of the input folder (default: detected and printed): "
                         + "; ".join(f"{k}: {v}" for k, v in formats.FORMATS.items()))
    ap.add_argument("--skip-bad", action="store_true",
                    help="leave out bad items instead of stopping; lists them in "
                         "DATA_DIR/skipped.csv")
    ap.add_argument("--cell-padding", type=int, default=ledger.TASK2_CELL_PADDING,
                    help="I3A Task 2: px kept around each mask component's bounding box "
                         "(ASSUMPTIONS.md C3)")
    ap.add_argument("--min-cell-area", type=int, default=ledger.TASK2_MIN_CELL_AREA,
                    help="I3A Task 2: mask components smaller than this (px) are not cells")
    ap.add_argument("--keep-border-cells", action="store_true",
                    help="I3A Task 2: keep cells that touch the image border (cut off)")


def add_augment_arguments(ap) -> None:
    ap.add_argument("--step", type=int, default=paper.ROTATION_STEP_DEG,
                    help="rotation step in degrees: H, S, N, C, Nm on I3A (section 3.2); the "
                         "base of the class-balanced rule on other class lists (C5)")
    ap.add_argument("--golgi-step", type=int, default=paper.GOLGI_ROTATION_STEP_DEG,
                    help="rotation step in degrees for Golgi on I3A (section 3.2)")
    ap.add_argument("--steps", type=_steps, default=None, metavar="S1,S2,...",
                    help="the rotation step of every class, in class-list order (overrides "
                         "--step, --golgi-step and the rule)")
    ap.add_argument("--border", choices=tuple(augment.BORDERS), default="reflect101",
                    help="how rotation fills the corners (ASSUMPTIONS.md D2)")
    ap.add_argument("--stretch", action="store_true",
                    help="stretch each cell to 0..255 before augmentation (ASSUMPTIONS.md D4)")


def reader_options(args) -> ReaderOptions:
    return ReaderOptions(args.cell_padding, args.min_cell_area, args.keep_border_cells)


def build_kwargs(args) -> dict:
    """The keyword arguments of `build.build_dataset` these options give."""
    return dict(format=args.format, skip_bad=args.skip_bad, reader=reader_options(args),
                step=args.step, golgi_step=args.golgi_step, steps=args.steps,
                border=args.border, stretch=args.stretch)
