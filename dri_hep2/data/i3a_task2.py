"""The I3A Task 2 layout (ledger C3): specimen images with their masks and a CSV of one row per
specimen; every connected component of a mask is one cell, cut out of its image. Its cutting
knobs are the only ones of `ReaderOptions` (dri_hep2.data.records) so far."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from .. import classes as class_lists
from ..classes import spelling_key
from . import cells, image_files, label_csv
from .records import CellRecord, CellSet, DataError, FirstLines, ReaderOptions, finish

HEADER = "Specimen ID,Pattern"


def is_label_csv(path: Path, header: list[str]) -> bool:
    """Task 2's CSV: its first column names specimens."""
    return bool(header) and "specimen" in header[0]


def _specimen_key(raw: str) -> str:
    """`1`, `001` and `0001` name one specimen; other names compare by spelling."""
    raw = raw.strip()
    return str(int(raw)) if raw.isdigit() else spelling_key(raw)


def read_task2(root: Path, *, skip_bad: bool = False,
               options: ReaderOptions = ReaderOptions()) -> CellSet:
    """I3A Task 2: specimen images `<specimen>_<n>.<png|tif|bmp>` (or `<specimen>.<ext>`), each
    with its mask `<stem>_Mask.<ext>` (non-zero = cell), and a CSV of one row per specimen
    `Specimen ID,Pattern` (comma or semicolon; an `intensity` column is read). Every connected
    component of a mask (8-connected) is one cell: its bounding box padded by `cell_padding`
    px; components under `min_cell_area` px, and unless `keep_border_cells` those touching the
    image border, are left out."""
    classes = class_lists.I3A_TASK2
    csv_path = label_csv.one_csv(root, is_label_csv, HEADER)
    rows = label_csv.read_table(csv_path, HEADER, ("specimen",), ("pattern", "class"),
                                {"intensity": ("intensity",)})
    bad: list[DataError] = []
    specimens: dict[str, tuple[str, int, str | None]] = {}    # key -> (id, label, intensity)
    ids = FirstLines(csv_path)
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
        if dup := ids.duplicate(key, f"duplicate specimen ID {row['id']}", line):
            bad.append(dup)
            continue
        specimens[key] = (row["id"], label, row.get("intensity") or None)
        ids.accept(key, line)
    images = sorted(p for p in root.iterdir() if p.is_file() and image_files.is_cell_image(p))
    records: list[CellRecord] = []
    masks: list[Path] = []
    mask_of = image_files.masks(root)
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
        mask = cells.decode(mask_path)
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
                                 csv_path, ids.line(key)))
    return finish(root, "i3a-task2", records, bad, skip_bad, [csv_path, *masks], classes,
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
