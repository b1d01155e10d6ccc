"""Read the I3A Task-1 cell set (section 3.1) into cell records, refusing bad input precisely.

Two layouts are accepted (docs/data.md):

- contest layout: `NNNNN.png` + `NNNNN_Mask.png` beside `gt_training.csv`, whose header starts
  `Image ID,Image class` and may carry more columns (intensity, specimen ID);
- pre-split layout: `training/`, `validation/`, `test/`, each holding one folder per class
  (`training/Homogeneous/123.png`), or flat folders of images labelled by a `gt_training.csv`
  at the top (ASSUMPTIONS.md D5).

Every problem found is a `DataError` naming the file and, for CSV problems, the line number.
With `skip_bad=True` the offending items are left out and listed instead. The record, the error
and these rules are every reader's (dri_hep2.data.records); the label CSV is read as the other
layouts' are (dri_hep2.data.label_csv).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import classes as class_lists
from . import cells, label_csv
from .records import CellRecord, CellSet, DataError, FirstLines, finish

CSV_NAME = "gt_training.csv"
SPLIT_FOLDERS = {"training": "train", "validation": "val", "test": "test"}
_IMAGE_RE = re.compile(r"^(\d+)\.png$", re.IGNORECASE)


def normalise_id(raw: str) -> str:
    """'1', '00001' and ' 1 ' all name cell 00001 (some copies drop the zero padding)."""
    raw = raw.strip()
    if not raw.isdigit():
        raise ValueError(f"image ID {raw!r} is not a number")
    return f"{int(raw):05d}"


def parse_label(raw: str) -> int:
    """I3A class name -> label, ignoring case, spaces and hyphens (`NuMem` or `Nuclear
    membrane`); ValueError for anything else."""
    return class_lists.I3A.label(raw)


def read_i3a(root: str | Path, *, skip_bad: bool = False) -> CellSet:
    """Records of every cell under `root` (either layout), checked; images not yet decoded."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("not a folder", root)
    if is_presplit(root):
        return _read_presplit(root, skip_bad)
    return _read_contest(root, skip_bad)


def is_presplit(root: Path) -> bool:
    return any((root / name).is_dir() for name in SPLIT_FOLDERS)


def load_images(records: list[CellRecord]) -> tuple[list[np.ndarray | None], list[DataError]]:
    """Decode each record's image as 8-bit grey (cut to its `box` where it has one); None and
    an error for unreadable ones.

    Kept apart from `read_i3a` so that the build can run it on all cores; it is still done
    before anything is written.
    """
    images, errors = [], []
    # The cells of one specimen image come in a row (records sort by ID, and a Task 2 cell's
    # ID starts with its image's): decode each such image once.
    last: tuple[Path | None, np.ndarray | None] = (None, None)
    for rec in records:
        if rec.box is None:
            img = decode_png(rec.image)
            reason = "unreadable or truncated PNG" if rec.image.suffix.lower() == ".png" \
                else "unreadable or truncated image"
        else:
            if last[0] != rec.image:
                last = (rec.image, decode_png(rec.image))
            img, reason = _cut(last[1], rec.box), "unreadable or truncated image"
            if last[1] is not None and img is None:
                reason = (f"image is {last[1].shape[1]}x{last[1].shape[0]}, smaller than its "
                          f"mask (cell {rec.id} at {rec.box})")
        if img is None:
            errors.append(DataError(reason, rec.image))
        images.append(img)
    return images, errors


def _cut(image: np.ndarray | None, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The box (x, y, w, h) of an image, copied (the image is dropped after its cells); None
    when the box does not fit inside the image."""
    if image is None:
        return None
    x, y, w, h = box
    if x + w > image.shape[1] or y + h > image.shape[0]:
        return None
    return image[y:y + h, x:x + w].copy()


def decode_png(path: Path) -> np.ndarray | None:
    """The cell's image as 8-bit grey, or None: `cells.decode`, shared with `make predict`."""
    return cells.decode(path)


# --- contest layout ---------------------------------------------------------------------------
def _read_contest(root: Path, skip_bad: bool) -> CellSet:
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise DataError(f"no {CSV_NAME} here and no training/validation/test folders: "
                        "not an I3A folder (nor an ICPR 2012, I3A Task 2 or folder-per-class "
                        "layout; docs/data.md lists what each needs)", root)
    rows = _read_csv(csv_path)
    bad: list[DataError] = []
    records: dict[str, CellRecord] = {}
    ids = FirstLines(csv_path)
    in_csv: set[str] = set()
    for line, row in rows:
        try:
            cell_id = normalise_id(row["id"])
            in_csv.add(cell_id)
            label = parse_label(row["class"])
        except ValueError as exc:
            bad.append(DataError(str(exc), csv_path, line))
            continue
        if dup := ids.duplicate(cell_id, f"duplicate image ID {cell_id}", line):
            bad.append(dup)
            continue
        image = _find_image(root, cell_id)
        if image is None:
            bad.append(DataError(f"image file {cell_id}.png missing for image ID {row['id']!r}",
                                 csv_path, line))
            continue
        mask = image.with_name(image.stem + "_Mask.png")
        records[cell_id] = CellRecord(cell_id, label, image, mask if mask.is_file() else None,
                                      row.get("specimen") or None, row.get("intensity") or None)
        ids.accept(cell_id, line)
    listed = {normalise_id(m.group(1)) for p in root.iterdir()
              if (m := _IMAGE_RE.match(p.name))}
    for cell_id in sorted(listed - in_csv):
        bad.append(DataError(f"image has no row in {CSV_NAME}", _find_image(root, cell_id)))
    return finish(root, "contest", list(records.values()), bad, skip_bad, [csv_path])


def _find_image(folder: Path, cell_id: str) -> Path | None:
    for name in (f"{cell_id}.png", f"{int(cell_id)}.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) with keys id, class and, where present, intensity and specimen."""
    return label_csv.read_table(path, "Image ID,Image class", ("image id",), ("image class",),
                                {"intensity": ("intensity",), "specimen": ("specimen",)},
                                exact=True, sep=",")


# --- pre-split layout (ASSUMPTIONS.md D5) -----------------------------------------------------
def _read_presplit(root: Path, skip_bad: bool) -> CellSet:
    missing = [name for name in SPLIT_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise DataError(f"pre-split layout needs training/, validation/ and test/; missing "
                        f"{', '.join(missing)}", root)
    csv_labels: dict[str, tuple[int, dict[str, str]]] | None = None
    if (root / CSV_NAME).is_file():
        csv_labels = {}
        for line, row in _read_csv(root / CSV_NAME):
            try:
                csv_labels.setdefault(normalise_id(row["id"]), (line, row))
            except ValueError as exc:
                raise DataError(str(exc), root / CSV_NAME, line) from None
    bad: list[DataError] = []
    records: dict[str, CellRecord] = {}
    for folder, split in SPLIT_FOLDERS.items():
        for image, label_dir in _presplit_images(root / folder):
            cell_id = normalise_id(_IMAGE_RE.match(image.name).group(1))
            try:
                if label_dir is not None:
                    label, extra = parse_label(label_dir), {}
                elif csv_labels is not None and cell_id in csv_labels:
                    label, extra = parse_label(csv_labels[cell_id][1]["class"]), \
                        csv_labels[cell_id][1]
                else:
                    raise ValueError("image has no class folder and no row in "
                                     f"{root / CSV_NAME}")
            except ValueError as exc:
                bad.append(DataError(str(exc), image))
                continue
            if cell_id in records:
                bad.append(DataError(f"duplicate image ID {cell_id} (also "
                                     f"{records[cell_id].image})", image))
                continue
            mask = image.with_name(image.stem + "_Mask.png")
            records[cell_id] = CellRecord(cell_id, label, image,
                                          mask if mask.is_file() else None,
                                          extra.get("specimen") or None,
                                          extra.get("intensity") or None, split)
    csv_files = [root / CSV_NAME] if (root / CSV_NAME).is_file() else []
    return finish(root, "presplit", list(records.values()), bad, skip_bad, csv_files)


def _presplit_images(folder: Path):
    """(image, class folder name or None) for every cell image in one split folder."""
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            for image in sorted(entry.iterdir()):
                if _IMAGE_RE.match(image.name):
                    yield image, entry.name
        elif _IMAGE_RE.match(entry.name):
            yield entry, None
