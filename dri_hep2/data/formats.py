"""Every on-disk layout `make data` reads, found by looking (or forced with FORMAT=), each into
the same cell records as the I3A reader (dri_hep2.data.i3a), with the same rules for bad input:
a `DataError` naming the file (and CSV line), or with `skip_bad` the item left out and listed.

    i3a        I3A Task 1: contest layout (gt_training.csv, NNNNN.png) or pre-split layout
    icpr2012   ICPR 2012 contest: NNN.png + NNN_mask.png, a semicolon CSV `ID;pattern`
    i3a-task2  I3A Task 2: specimen images + masks, a CSV of one row per specimen; cells are
               cut out along the mask's connected components
    folders    one folder per class (<root>/<class>/*.png|tif|bmp), optional specimens.csv

docs/data.md shows an example tree of each; ASSUMPTIONS.md C1-C4 what we assumed.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import classes as class_lists
from .. import ledger
from ..classes import ClassList, spelling_key
from . import i3a
from .i3a import CellRecord, CellSet, DataError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
SPECIMENS_CSV = "specimens.csv"     # the folder layout's optional specimen list


@dataclass(frozen=True)
class ReaderOptions:
    """Knobs of the readers (only Task 2 has any: how cells are cut from its masks, C3)."""
    cell_padding: int = ledger.TASK2_CELL_PADDING
    min_cell_area: int = ledger.TASK2_MIN_CELL_AREA
    keep_border_cells: bool = False

    def manifest(self, format: str) -> dict:
        """What the data folder's manifest records (and the build hash covers)."""
        out: dict = {"format": format}
        if format == "i3a-task2":
            out.update(cell_padding=self.cell_padding, min_cell_area=self.min_cell_area,
                       keep_border_cells=self.keep_border_cells)
        return out


FORMATS = {
    "i3a": "I3A Task 1",
    "icpr2012": "ICPR 2012 contest",
    "i3a-task2": "I3A Task 2 specimen images",
    "folders": "a folder per class",
}


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
    if format == "i3a":
        return i3a.read_i3a(root, skip_bad=skip_bad)
    if format == "icpr2012":
        return read_icpr2012(root, skip_bad=skip_bad)
    if format == "i3a-task2":
        return read_task2(root, skip_bad=skip_bad, options=options)
    return read_folders(root, skip_bad=skip_bad)


def detect(root: Path) -> tuple[str, str]:
    """(format, why) of a folder, from what is in it (docs/data.md, "Layouts")."""
    if i3a.is_presplit(root):
        return "i3a", "training/, validation/, test/ folders"
    # The folder layout's own specimens.csv says nothing about the layout.
    headers = {p: _header(p) for p in sorted(root.glob("*.csv"))
               if p.is_file() and p.name != SPECIMENS_CSV}
    task2 = [p for p, h in headers.items() if h and "specimen" in h[0]]
    if task2:
        return "i3a-task2", f"{task2[0].name} lists specimens"
    icpr = [p for p, h in headers.items() if _is_icpr_csv(p, h)]
    if icpr:
        return "icpr2012", f"{icpr[0].name} is a semicolon-separated CSV"
    if (root / i3a.CSV_NAME).is_file():
        return "i3a", f"{i3a.CSV_NAME}"
    if _class_folders(root):
        return "folders", "sub-folders of images, one per class"
    # None fits: the I3A reader says what the paper's layout needs (and names the others).
    return "i3a", "no other layout fits"


# --- CSV ---------------------------------------------------------------------------------------
def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="replace")      # BOM-tolerant


def _delimiter(path: Path) -> str:
    """`;` when the first non-empty line has one and no comma, else `,`."""
    first = next((line for line in _text(path).splitlines() if line.strip()), "")
    return ";" if ";" in first and "," not in first else ","


def _header(path: Path) -> list[str]:
    """The first row's cells, lower case (empty for an empty file)."""
    try:
        rows = _rows(path)
    except (OSError, UnicodeError):
        return []
    return [c.strip().lower() for c in rows[0][1]] if rows else []


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-empty row; CRLF-tolerant."""
    lines = csv.reader(io.StringIO(_text(path), newline=""), delimiter=_delimiter(path))
    return [(i + 1, row) for i, row in enumerate(lines) if any(c.strip() for c in row)]


def _table(path: Path, expected: str, first: tuple[str, ...], second: tuple[str, ...],
           extras: dict[str, tuple[str, ...]]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a label CSV as {"id", "class", extra keys}: the first column's header must
    contain one of `first`, the second's one of `second`; a later column whose header contains
    one of `extras[key]` is read as `key`."""
    rows = _rows(path)
    if not rows:
        raise DataError(f"empty CSV (expected header {expected!r})", path)
    header_line, header = rows[0]
    names = [h.strip().lower() for h in header]
    if len(names) < 2 or not any(w in names[0] for w in first) \
            or not any(w in names[1] for w in second):
        raise DataError(f"missing header: first row is {_delimiter(path).join(header)!r}, "
                        f"expected {expected!r} (more columns may follow)", path, header_line)
    columns = {}
    for col, name in enumerate(names[2:], start=2):
        for key, words in extras.items():
            if key not in columns and any(w in name for w in words):
                columns[key] = col
    out = []
    for line, row in rows[1:]:
        if len(row) < 2:
            raise DataError(f"row has {len(row)} column(s), expected at least 2", path, line)
        rec = {"id": row[0].strip(), "class": row[1]}
        for key, col in columns.items():
            rec[key] = row[col].strip() if col < len(row) else ""
        out.append((line, rec))
    if not out:
        raise DataError("CSV has a header but no rows", path)
    return out


def _one_csv(root: Path, fits, what: str) -> Path:
    """The one CSV in `root` that `fits(path, header)`; refuses several. When none fits but
    there is exactly one CSV, that one: its reader then says what is wrong with its header."""
    every = [p for p in sorted(root.glob("*.csv")) if p.is_file()]
    found = [p for p in every if fits(p, _header(p))]
    if not found and len(every) == 1:
        return every[0]
    if not found:
        raise DataError(f"no CSV with header {what!r} here", root)
    if len(found) > 1:
        raise DataError(f"several CSVs with header {what!r} here "
                        f"({', '.join(p.name for p in found)}): keep one", root)
    return found[0]


def _number(raw: str, what: str = "ID") -> int:
    if not raw.strip().isdigit():
        raise ValueError(f"{what} {raw.strip()!r} is not a number")
    return int(raw)


# --- ICPR 2012 -----------------------------------------------------------------------------------
_ICPR_IMAGE = re.compile(r"^(\d+)\.png$", re.IGNORECASE)
ICPR_HEADER = "ID;pattern"


def _is_icpr_csv(path: Path, header: list[str]) -> bool:
    """ICPR 2012's label CSV: semicolon-separated (its header may be broken: the reader then
    says so), or headed `ID` (its reader then says when the separator is wrong)."""
    return bool(header) and "specimen" not in header[0] and (
        _delimiter(path) == ";" or header[0] == "id")


def read_icpr2012(root: Path, *, skip_bad: bool = False) -> CellSet:
    """ICPR 2012 cells (ledger C2): `NNN.png` with `NNN_mask.png` beside it (optional), one
    semicolon CSV `ID;pattern` (lower-case patterns; more columns may follow: one whose name
    has `image` or `specimen` gives the specimen, `intensity` the intensity)."""
    classes = class_lists.ICPR2012
    csv_path = _one_csv(root, _is_icpr_csv, ICPR_HEADER)
    if _delimiter(csv_path) != ";":
        raise DataError(f"not semicolon-separated: the header is expected as {ICPR_HEADER!r}",
                        csv_path, 1)
    rows = _table(csv_path, ICPR_HEADER, ("id",), ("pattern", "class"),
                  {"specimen": ("specimen", "image"), "intensity": ("intensity",)})
    images = {int(m.group(1)): p for p in root.iterdir() if (m := _ICPR_IMAGE.match(p.name))}
    masks = _masks(root)
    bad: list[DataError] = []
    records: dict[int, CellRecord] = {}
    first_line: dict[int, int] = {}
    listed: set[int] = set()
    for line, row in rows:
        try:
            number = _number(row["id"])
            listed.add(number)
            label = classes.label(row["class"])
        except ValueError as exc:
            bad.append(DataError(str(exc), csv_path, line))
            continue
        if number in records:
            bad.append(DataError(f"duplicate image ID {row['id']} (first on line "
                                 f"{first_line[number]})", csv_path, line))
            continue
        image = images.get(number)
        if image is None:
            bad.append(DataError(f"image file {number:03d}.png missing for image ID "
                                 f"{row['id']!r}", csv_path, line))
            continue
        records[number] = CellRecord(f"{number:03d}", label, image, masks.get(image.stem),
                                     row.get("specimen") or None, row.get("intensity") or None)
        first_line[number] = line
    for number in sorted(set(images) - listed):
        bad.append(DataError(f"image has no row in {csv_path.name}", images[number]))
    return i3a.finish(root, "icpr2012", list(records.values()), bad, skip_bad, [csv_path],
                       classes, "icpr2012")


def _masks(folder: Path) -> dict[str, Path]:
    """The masks of a folder by the stem of their image: `X_mask.<ext>` (any case, any image
    suffix) is the mask of `X.<ext>`. Listed once per folder, not once per image."""
    return {p.stem[:-len("_mask")]: p for p in sorted(folder.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.lower().endswith("_mask")}


# --- I3A Task 2 ----------------------------------------------------------------------------------
TASK2_HEADER = "Specimen ID,Pattern"


def _specimen_key(raw: str) -> str:
    """`1`, `001` and `0001` name one specimen; other names compare by spelling."""
    raw = raw.strip()
    return str(int(raw)) if raw.isdigit() else spelling_key(raw)


def read_task2(root: Path, *, skip_bad: bool = False,
               options: ReaderOptions = ReaderOptions()) -> CellSet:
    """I3A Task 2 (ledger C3): specimen images `<specimen>_<n>.<png|tif|bmp>` (or
    `<specimen>.<ext>`), each with its mask `<stem>_Mask.<ext>` (non-zero = cell), and a CSV of
    one row per specimen `Specimen ID,Pattern` (comma or semicolon; an `intensity` column is
    read). Every connected component of a mask (8-connected) is one cell: its bounding box
    padded by `cell_padding` px; components under `min_cell_area` px, and unless
    `keep_border_cells` those touching the image border, are left out."""
    classes = class_lists.I3A_TASK2
    csv_path = _one_csv(root, lambda _, h: bool(h) and "specimen" in h[0], TASK2_HEADER)
    rows = _table(csv_path, TASK2_HEADER, ("specimen",), ("pattern", "class"),
                  {"intensity": ("intensity",)})
    bad: list[DataError] = []
    specimens: dict[str, tuple[str, int, str | None]] = {}    # key -> (id, label, intensity)
    first_line: dict[str, int] = {}
    for line, row in rows:
        key = _specimen_key(row["id"])
        if not key:
            bad.append(DataError("empty specimen ID", csv_path, line))
            continue
        try:
            label = classes.label(row["class"])
        except ValueError as exc:
            bad.append(DataError(str(exc), csv_path, line))
            continue
        if key in specimens:
            bad.append(DataError(f"duplicate specimen ID {row['id']} (first on line "
                                 f"{first_line[key]})", csv_path, line))
            continue
        specimens[key] = (row["id"], label, row.get("intensity") or None)
        first_line[key] = line
    images = sorted(p for p in root.iterdir() if p.is_file()
                    and p.suffix.lower() in IMAGE_SUFFIXES
                    and not p.stem.lower().endswith("_mask"))
    records: list[CellRecord] = []
    masks: list[Path] = []
    mask_of = _masks(root)
    seen: set[str] = set()
    for image in images:
        key = _specimen_key(re.split(r"[_-]", image.stem, maxsplit=1)[0])
        if key not in specimens:
            bad.append(DataError(f"specimen {image.stem.split('_')[0]!r} of this image has no "
                                 f"row in {csv_path.name}", image))
            continue
        seen.add(key)
        mask_path = mask_of.get(image.stem)
        if mask_path is None:
            bad.append(DataError(f"mask {image.stem}_Mask{image.suffix} missing", image))
            continue
        mask = i3a.decode_png(mask_path)
        if mask is None:
            bad.append(DataError("unreadable or truncated mask image", mask_path))
            continue
        masks.append(mask_path)
        specimen, label, intensity = specimens[key]
        for k, box in enumerate(cell_boxes(mask, options), start=1):
            records.append(CellRecord(f"{image.stem}_c{k:03d}", label, image, mask_path,
                                      specimen, intensity, box=box))
    for key in specimens:
        if key not in seen:
            bad.append(DataError(f"specimen {specimens[key][0]} has no image here (expected "
                                 f"{specimens[key][0]}_<n>.tif or .png with its _Mask)",
                                 csv_path, first_line[key]))
    return i3a.finish(root, "i3a-task2", records, bad, skip_bad, [csv_path, *masks], classes,
                       "i3a-task2")


def cell_boxes(mask: np.ndarray, options: ReaderOptions = ReaderOptions()
               ) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of every cell of a mask, padded and clipped to the image, in OpenCV's
    label order (raster order of each component's first pixel: the same on every run)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8),
                                                          connectivity=8)
    height, width = mask.shape
    pad = options.cell_padding
    boxes = []
    for x, y, w, h, area in stats[1:]:
        if area < options.min_cell_area:
            continue
        touches = x == 0 or y == 0 or x + w == width or y + h == height
        if touches and not options.keep_border_cells:
            continue
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(width, x + w + pad), min(height, y + h + pad)
        boxes.append((int(x0), int(y0), int(x1 - x0), int(y1 - y0)))
    return boxes


# --- a folder per class --------------------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.stem.lower().endswith("_mask"))


def _class_folders(root: Path) -> list[Path]:
    """Sub-folders holding images: the classes of the folder layout."""
    return [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and _images_in(d)]


def class_list_of(folder_names: list[str]) -> ClassList:
    """A known class list when the folders name exactly its classes (its order and labels);
    else the folder names in sorted order (ledger C4)."""
    for known in class_lists.KNOWN.values():
        if known.knows(folder_names):
            return known
    return class_lists.custom(sorted(folder_names, key=lambda n: (spelling_key(n), n)))


def read_folders(root: Path, *, skip_bad: bool = False) -> CellSet:
    """One folder per class (ledger C4): `<root>/<class>/*.png|tif|tiff|bmp` (`*_mask.*`
    ignored); cell ID `<class folder>/<file stem>`. An optional `specimens.csv` at the top,
    `image,specimen` (path relative to the root, or the cell ID), gives the specimens."""
    folders = _class_folders(root)
    if len(folders) < 2:
        raise DataError("the folder-per-class layout needs two or more sub-folders of images "
                        f"(found {len(folders)})", root)
    classes = class_list_of([d.name for d in folders])
    bad: list[DataError] = []
    records: dict[str, CellRecord] = {}
    for folder in folders:
        label = classes.label(folder.name)
        masks = _masks(folder)
        for image in _images_in(folder):
            cell_id = f"{folder.name}/{image.stem}"
            if cell_id in records:
                bad.append(DataError(f"duplicate cell ID {cell_id} (also "
                                     f"{records[cell_id].image.name})", image))
                continue
            records[cell_id] = CellRecord(cell_id, label, image, masks.get(image.stem))
    meta = []
    if (root / SPECIMENS_CSV).is_file():
        meta.append(root / SPECIMENS_CSV)
        records = _with_specimens(root / SPECIMENS_CSV, root, records, bad)
    return i3a.finish(root, "folders", list(records.values()), bad, skip_bad, meta, classes,
                       "folders")


def _with_specimens(path: Path, root: Path, records: dict[str, CellRecord],
                    bad: list[DataError]) -> dict[str, CellRecord]:
    """The records with the specimens of `specimens.csv`; every image needs a row."""
    by_key = {}
    for cell_id, rec in records.items():
        by_key[cell_id] = by_key[rec.image.relative_to(root).as_posix()] = cell_id
    specimen: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, row in _table(path, "image,specimen", ("image", "file", "id"), ("specimen",), {}):
        # _table names the two columns `id` and `class`: here the image and its specimen.
        key = row["id"].replace("\\", "/")
        cell_id = by_key.get(key) or by_key.get(key.rsplit(".", 1)[0])
        if cell_id is None:
            bad.append(DataError(f"no image {row['id']!r} under {root}", path, line))
        elif cell_id in specimen:
            bad.append(DataError(f"duplicate row for {cell_id} (first on line "
                                 f"{first_line[cell_id]})", path, line))
        elif not row["class"].strip():
            bad.append(DataError(f"empty specimen for {cell_id}", path, line))
        else:
            specimen[cell_id], first_line[cell_id] = row["class"].strip(), line
    out = {}
    for cell_id, rec in records.items():
        if cell_id not in specimen:
            bad.append(DataError(f"image has no row in {SPECIMENS_CSV}", rec.image))
            continue
        out[cell_id] = CellRecord(rec.id, rec.label, rec.image, rec.mask, specimen[cell_id])
    return out
