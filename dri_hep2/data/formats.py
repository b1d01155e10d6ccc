"""Every on-disk layout `make data` reads, found by looking (or forced with FORMAT=): the
registry of formats, the detection and `read_cells`. Each reader gives the same cell records
(dri_hep2.data.records) with the same rules for bad input: a `DataError` naming the file (and
CSV line), or with `skip_bad` the item left out and listed.

    i3a        I3A Task 1: contest layout (gt_training.csv, NNNNN.png) or pre-split layout
               (dri_hep2.data.i3a)
    icpr2012   ICPR 2012 contest: NNN.png + NNN_mask.png, a semicolon CSV `ID;pattern`
               (dri_hep2.data.icpr2012)
    i3a-task2  I3A Task 2: specimen images + masks, a CSV of one row per specimen; cells are
               cut out along the mask's connected components (dri_hep2.data.i3a_task2)
    folders    one folder per class (<root>/<class>/*.png|tif|bmp), optional specimens.csv
               (dri_hep2.data.class_folders)

docs/data.md shows an example tree of each; ASSUMPTIONS.md C1-C4 what we assumed. A new
layout is one `Format` entry of `REGISTRY`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import class_folders, i3a, i3a_task2, icpr2012, label_csv
from .records import CellSet, DataError, ReaderOptions

# How telling a clue is, most telling first: detection follows the most telling clue found,
# and between clues of one rank the earlier entry of REGISTRY.
BY_SPLIT_FOLDERS, BY_CSV_HEADER, BY_CSV_SEPARATOR, BY_CSV_NAME, BY_SUB_FOLDERS = range(5)

# A clue looks at a folder and its CSVs' headers ({path: lower-case first row}) and says why
# the folder is of its format, or None.
Clue = Callable[[Path, dict[Path, list[str]]], "str | None"]


@dataclass(frozen=True)
class Format:
    key: str                                   # FORMAT= and the data manifest's `format`
    title: str
    read: Callable[..., CellSet]               # (root, *, skip_bad, options)
    clues: tuple[tuple[int, Clue], ...]        # (rank, clue)


def _no_options(read) -> Callable[..., CellSet]:
    """A reader without knobs, called as every reader is."""
    return lambda root, *, skip_bad, options: read(root, skip_bad=skip_bad)


def _csv_clue(fits, why: str) -> Clue:
    """A clue from the folder's CSVs: the first (by name) whose header `fits(path, header)`,
    named in `why` at {}."""
    def clue(root: Path, headers: dict[Path, list[str]]) -> str | None:
        found = next((p for p, h in headers.items() if fits(p, h)), None)
        return None if found is None else why.format(found.name)
    return clue


def _i3a_presplit(root: Path, headers) -> str | None:
    return "training/, validation/, test/ folders" if i3a.is_presplit(root) else None


def _i3a_csv(root: Path, headers) -> str | None:
    return i3a.CSV_NAME if (root / i3a.CSV_NAME).is_file() else None


def _class_folders(root: Path, headers) -> str | None:
    return "sub-folders of images, one per class" if class_folders.class_folders(root) \
        else None


REGISTRY = (
    Format("i3a", "I3A Task 1", _no_options(i3a.read_i3a),
           ((BY_SPLIT_FOLDERS, _i3a_presplit), (BY_CSV_NAME, _i3a_csv))),
    Format("icpr2012", "ICPR 2012 contest", _no_options(icpr2012.read_icpr2012),
           ((BY_CSV_SEPARATOR, _csv_clue(icpr2012.is_label_csv,
                                      "{} is a semicolon-separated CSV")),)),
    Format("i3a-task2", "I3A Task 2 specimen images", i3a_task2.read_task2,
           ((BY_CSV_HEADER, _csv_clue(i3a_task2.is_label_csv, "{} lists specimens")),)),
    Format("folders", "a folder per class", _no_options(class_folders.read_folders),
           ((BY_SUB_FOLDERS, _class_folders),)),
)
_FORMAT_OF = {f.key: f for f in REGISTRY}
# key -> title, as FORMAT= and the pages name them.
FORMATS = {f.key: f.title for f in REGISTRY}


def read_cells(root: str | Path, format: str = "auto", *, skip_bad: bool = False,
               options: ReaderOptions = ReaderOptions(), announce=print) -> CellSet:
    """The cell records under `root`, read as `format` (`auto`: detected, and said so through
    `announce`)."""
    root = Path(root)
    if format not in ("auto", *FORMATS):
        raise DataError(f"unknown format {format!r} (auto, {', '.join(FORMATS)})", root)
    if not root.is_dir():
        raise DataError("not a folder", root)
    how = "as asked (FORMAT=)"
    if format == "auto":
        format, how = detect(root)
    if announce:
        announce(f"reading {root} as {FORMATS[format]} ({how})")
    return _FORMAT_OF[format].read(root, skip_bad=skip_bad, options=options)


def detect(root: Path) -> tuple[str, str]:
    """(format, why) of a folder, from what is in it (docs/data.md, "Layouts")."""
    # The folder layout's own specimens.csv says nothing about the layout.
    headers = {p: label_csv.header(p) for p in sorted(root.glob("*.csv"))
               if p.is_file() and p.name != class_folders.SPECIMENS_CSV}
    clues = sorted(((rank, clue, f.key) for f in REGISTRY for rank, clue in f.clues),
                   key=lambda c: c[0])
    for _, clue, key in clues:
        why = clue(root, headers)
        if why is not None:
            return key, why
    # None fits: the I3A reader says what the paper's layout needs (and names the others).
    return "i3a", "no other layout fits"
