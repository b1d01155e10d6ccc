"""Read the I3A Task-1 cell set (section 3.1) into cell records, refusing bad input precisely.

Two layouts are accepted (docs/data.md):

- contest layout: `NNNNN.png` + `NNNNN_Mask.png` beside `gt_training.csv`, whose header starts
  `Image ID,Image class` and may carry more columns (intensity, specimen ID);
- pre-split layout: `training/`, `validation/`, `test/`, each holding one folder per class
  (`training/Homogeneous/123.png`), or flat folders of images labelled by a `gt_training.csv`
  at the top (ASSUMPTIONS.md D5).

Every problem found is a `DataError` (`I3AError`) naming the file and, for CSV problems, the
line number. With `skip_bad=True` the offending items are left out and listed instead. The
readers of the other layouts (dri_hep2.data.formats) share these rules, the cell record and
`finish`.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import classes as class_lists
from ..classes import ClassList
from ..errors import UserError
from . import cells

CSV_NAME = "gt_training.csv"
SPLIT_FOLDERS = {"training": "train", "validation": "val", "test": "test"}
_IMAGE_RE = re.compile(r"^(\d+)\.png$", re.IGNORECASE)


class DataError(UserError):
    """Bad input: `file` (and `line` of a CSV) say where, `reason` what. Every reader
    (dri_hep2.data.formats) raises it."""

    def __init__(self, reason: str, file: str | Path, line: int | None = None):
        self.reason, self.file, self.line = reason, Path(file), line
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        # Workers return these to the parent: pickle by the constructor's own arguments.
        return type(self), (self.reason, self.file, self.line)


I3AError = DataError      # the name the I3A reader and its callers have always used


@dataclass(frozen=True)
class CellRecord:
    id: str                       # zero-padded to 5 digits, as I3A names its files
    label: int                    # index into the set's class list (I3A: paper.CLASSES)
    image: Path
    mask: Path | None = None
    specimen: str | None = None
    intensity: str | None = None  # "positive" / "intermediate" where the CSV says
    split: str | None = None      # train / val / test, given by the pre-split layout only
    # (x, y, width, height) of the cell inside `image` when the image holds many cells (I3A
    # Task 2's specimen images, cut along their mask); None: the whole image is the cell.
    box: tuple[int, int, int, int] | None = None


@dataclass
class I3ASet:
    """What a reader found: the records, their class list, and what it left out."""
    layout: str                                   # "contest" or "presplit" (I3A), ...
    records: list[CellRecord]
    skipped: list[DataError] = field(default_factory=list)
    classes: ClassList = class_lists.I3A
    format: str = "i3a"                           # dri_hep2.data.formats.FORMATS key
    # Files besides the cell images that decide the outputs (label CSV, Task 2 masks): hashed
    # into the build hash with the images.
    meta_files: list[Path] = field(default_factory=list)


CellSet = I3ASet          # the name for sets read by any reader


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


def read_i3a(root: str | Path, *, skip_bad: bool = False) -> I3ASet:
    """Records of every cell under `root` (either layout), checked; images not yet decoded."""
    root = Path(root)
    if not root.is_dir():
        raise I3AError("not a folder", root)
    if is_presplit(root):
        return _read_presplit(root, skip_bad)
    return _read_contest(root, skip_bad)


def is_presplit(root: Path) -> bool:
    return any((root / name).is_dir() for name in SPLIT_FOLDERS)


def load_images(records: list[CellRecord]) -> tuple[list[np.ndarray | None], list[I3AError]]:
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
            errors.append(I3AError(reason, rec.image))
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
def _read_contest(root: Path, skip_bad: bool) -> I3ASet:
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise I3AError(f"no {CSV_NAME} here and no training/validation/test folders: "
                       "not an I3A folder (nor an ICPR 2012, I3A Task 2 or folder-per-class "
                       "layout; docs/data.md lists what each needs)", root)
    rows = _read_csv(csv_path)
    bad: list[I3AError] = []
    records: dict[str, CellRecord] = {}
    first_line: dict[str, int] = {}
    in_csv: set[str] = set()
    for line, row in rows:
        try:
            cell_id = normalise_id(row["id"])
            in_csv.add(cell_id)
            label = parse_label(row["class"])
        except ValueError as exc:
            bad.append(I3AError(str(exc), csv_path, line))
            continue
        if cell_id in records:
            bad.append(I3AError(f"duplicate image ID {cell_id} (first on line "
                                f"{first_line[cell_id]})", csv_path, line))
            continue
        image = _find_image(root, cell_id)
        if image is None:
            bad.append(I3AError(f"image file {cell_id}.png missing for image ID {row['id']!r}",
                                csv_path, line))
            continue
        mask = image.with_name(image.stem + "_Mask.png")
        records[cell_id] = CellRecord(cell_id, label, image, mask if mask.is_file() else None,
                                      row.get("specimen") or None, row.get("intensity") or None)
        first_line[cell_id] = line
    listed = {normalise_id(m.group(1)) for p in root.iterdir()
              if (m := _IMAGE_RE.match(p.name))}
    for cell_id in sorted(listed - in_csv):
        bad.append(I3AError(f"image has no row in {CSV_NAME}", _find_image(root, cell_id)))
    return finish(root, "contest", list(records.values()), bad, skip_bad, [csv_path])


def _find_image(folder: Path, cell_id: str) -> Path | None:
    for name in (f"{cell_id}.png", f"{int(cell_id)}.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) with keys id, class and, where present, intensity and specimen."""
    text = path.read_bytes().decode("utf-8-sig", errors="replace")   # BOM-tolerant
    lines = list(csv.reader(io.StringIO(text, newline="")))            # CRLF-tolerant
    numbered = [(i + 1, row) for i, row in enumerate(lines) if any(c.strip() for c in row)]
    if not numbered:
        raise I3AError("empty CSV (expected header 'Image ID,Image class')", path)
    header_line, header = numbered[0]
    names = [h.strip().lower() for h in header]
    if len(names) < 2 or names[0] != "image id" or names[1] != "image class":
        raise I3AError(f"missing header: first row is {','.join(header)!r}, expected "
                       "'Image ID,Image class' (more columns may follow)", path, header_line)
    extra = {}
    for col, name in enumerate(names[2:], start=2):
        for key in ("intensity", "specimen"):
            if key in name and key not in extra:
                extra[key] = col
    out = []
    for line, row in numbered[1:]:
        if len(row) < 2:
            raise I3AError(f"row has {len(row)} column(s), expected at least 2", path, line)
        rec = {"id": row[0], "class": row[1]}
        for key, col in extra.items():
            rec[key] = row[col].strip() if col < len(row) else ""
        out.append((line, rec))
    if not out:
        raise I3AError("CSV has a header but no rows", path)
    return out


# --- pre-split layout (ASSUMPTIONS.md D5) -----------------------------------------------------
def _read_presplit(root: Path, skip_bad: bool) -> I3ASet:
    missing = [name for name in SPLIT_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise I3AError(f"pre-split layout needs training/, validation/ and test/; missing "
                       f"{', '.join(missing)}", root)
    csv_labels: dict[str, tuple[int, dict[str, str]]] | None = None
    if (root / CSV_NAME).is_file():
        csv_labels = {}
        for line, row in _read_csv(root / CSV_NAME):
            try:
                csv_labels.setdefault(normalise_id(row["id"]), (line, row))
            except ValueError as exc:
                raise I3AError(str(exc), root / CSV_NAME, line) from None
    bad: list[I3AError] = []
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
                bad.append(I3AError(str(exc), image))
                continue
            if cell_id in records:
                bad.append(I3AError(f"duplicate image ID {cell_id} (also "
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


def finish(root: Path, layout: str, records: list[CellRecord], bad: list[I3AError],
            skip_bad: bool, meta_files: list[Path] = (), classes: ClassList = class_lists.I3A,
            format: str = "i3a") -> I3ASet:
    """The set, or the first problem (with a count of the others) unless `skip_bad`."""
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more problem(s); --skip-bad leaves them out)" \
            if len(bad) > 1 else " (--skip-bad leaves such items out)"
        raise I3AError(bad[0].reason + more, bad[0].file, bad[0].line)
    if not records:
        raise I3AError("no usable cell images found", root)
    records.sort(key=lambda r: r.id)
    return I3ASet(layout, records, bad, classes, format, list(meta_files))
