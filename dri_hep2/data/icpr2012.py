"""The ICPR 2012 contest layout (ledger C2): `NNN.png` with `NNN_mask.png` beside it, and one
semicolon CSV `ID;pattern`."""
from __future__ import annotations

import re
from pathlib import Path

from .. import classes as class_lists
from . import image_files, label_csv
from .records import CellRecord, CellSet, DataError, FirstLines, finish

_IMAGE = re.compile(r"^(\d+)\.png$", re.IGNORECASE)
HEADER = "ID;pattern"


def is_label_csv(path: Path, header: list[str]) -> bool:
    """ICPR 2012's label CSV: semicolon-separated (its header may be broken: the reader then
    says so), or headed `ID` (its reader then says when the separator is wrong)."""
    return bool(header) and "specimen" not in header[0] and (
        label_csv.delimiter(path) == ";" or header[0] == "id")


def _number(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError(f"ID {raw.strip()!r} is not a number")
    return int(raw)


def read_icpr2012(root: Path, *, skip_bad: bool = False) -> CellSet:
    """ICPR 2012 cells: `NNN.png` with `NNN_mask.png` beside it (optional), one semicolon CSV
    `ID;pattern` (lower-case patterns; more columns may follow: one whose name has `image` or
    `specimen` gives the specimen, `intensity` the intensity)."""
    classes = class_lists.ICPR2012
    csv_path = label_csv.one_csv(root, is_label_csv, HEADER)
    if label_csv.delimiter(csv_path) != ";":
        raise DataError(f"not semicolon-separated: the header is expected as {HEADER!r}",
                        csv_path, 1)
    rows = label_csv.read_table(csv_path, HEADER, ("id",), ("pattern", "class"),
                                {"specimen": ("specimen", "image"),
                                 "intensity": ("intensity",)}, sep=";")
    images = {int(m.group(1)): p for p in root.iterdir() if (m := _IMAGE.match(p.name))}
    masks = image_files.masks(root)
    bad: list[DataError] = []
    records: dict[int, CellRecord] = {}
    ids = FirstLines(csv_path)
    listed: set[int] = set()
    for line, row in rows:
        try:
            number = _number(row["id"])
            listed.add(number)
            label = classes.label(row["class"])
        except ValueError as exc:
            bad.append(DataError(str(exc), csv_path, line))
            continue
        if dup := ids.duplicate(number, f"duplicate image ID {row['id']}", line):
            bad.append(dup)
            continue
        image = images.get(number)
        if image is None:
            bad.append(DataError(f"image file {number:03d}.png missing for image ID "
                                 f"{row['id']!r}", csv_path, line))
            continue
        records[number] = CellRecord(f"{number:03d}", label, image, masks.get(image.stem),
                                     row.get("specimen") or None, row.get("intensity") or None)
        ids.accept(number, line)
    for number in sorted(set(images) - listed):
        bad.append(DataError(f"image has no row in {csv_path.name}", images[number]))
    return finish(root, "icpr2012", list(records.values()), bad, skip_bad, [csv_path],
                  classes, "icpr2012")
