"""The cells `make predict` is given: found, read and labelled.

    IMAGES (folder | I3A folder | CSV | one image) ──read_inputs──▶ cells (file, id, label?,
        specimen?) ──load_views──▶ 76x76 views, decoded and resized as the LMDB build does
        (dri_hep2.data.cells), bad files refused (or listed) before anything is written

A label is a class name, mapped to the model's class order by `label_index`.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import paper
from ..data import cells as cellio
from ..data import i3a, image_files
from ..data.folder import DataFolder
from ..data.records import DataError, FirstLines
from ..errors import UserError


@dataclass(frozen=True)
class Cell:
    id: str
    file: Path
    label: str | None = None          # class name as given (mapped to the model's order later)
    specimen: str | None = None
    line: int | None = None           # CSV line, for messages


@dataclass
class Inputs:
    kind: str                  # "folder", "csv", "i3a-contest", "i3a-presplit", "file"
    cells: list[Cell]
    skipped: list[DataError] = field(default_factory=list)
    splits: dict[str, str | None] = field(default_factory=dict)   # id -> split (pre-split)


def read_inputs(images: str | Path, *, split: str | None = None,
                data: DataFolder | None = None, skip_bad: bool = False) -> Inputs:
    """The cells named by IMAGES: a CSV listing files, an I3A folder (either layout) or a
    folder of images (one sub-folder per specimen, if any). `split` keeps the cells of one
    split of the run's data folder (I3A layouts only)."""
    images = Path(images)
    if images.is_file() and images.suffix.lower() == ".csv":
        inputs = _read_csv_list(images, skip_bad)
    elif images.is_dir() and ((images / i3a.CSV_NAME).is_file() or i3a.is_presplit(images)):
        inputs = _read_i3a(images, skip_bad)
    elif images.is_dir():
        inputs = _read_folder(images)
    elif images.is_file() and images.suffix.lower() in cellio.IMAGE_SUFFIXES:
        inputs = Inputs("file", [Cell(id=images.stem, file=images)])
    else:
        raise UserError(f"IMAGES={images}: no such folder, image or CSV file (give a folder of "
                        "cell images, an I3A folder, a CSV with a 'file' column, or one image)")
    if split:
        inputs.cells = _keep_split(inputs, images, split, data)
    if not inputs.cells:
        raise UserError(f"IMAGES={images}: no cell images found"
                        + (f" in split {split}" if split else ""))
    return inputs


def _read_folder(root: Path) -> Inputs:
    """Images at the top of `root` and in its sub-folders; a sub-folder names the specimen."""
    found = []
    for path in sorted(root.rglob("*")):
        if image_files.is_cell_image(path) and path.is_file():
            rel = path.relative_to(root)
            if len(rel.parts) > 2:
                continue    # deeper folders are not part of this layout
            found.append(Cell(id=str(rel.with_suffix("")), file=path,
                              specimen=rel.parts[0] if len(rel.parts) == 2 else None))
    return Inputs("folder", found)


def _read_i3a(root: Path, skip_bad: bool) -> Inputs:
    dataset = i3a.read_i3a(root, skip_bad=skip_bad)
    # i3a's labels index paper.CLASSES; carried as names and mapped to the model's own order.
    found = [Cell(id=r.id, file=r.image, label=paper.CLASSES[r.label], specimen=r.specimen)
             for r in dataset.records]
    return Inputs(f"i3a-{dataset.layout}", found, list(dataset.skipped),
                  {r.id: r.split for r in dataset.records})


# Column names of a CSV list (case-insensitive); the first of each tuple is documented.
_CSV_COLUMNS = {"file": ("file", "path", "image"), "id": ("id", "image id", "cell"),
                "label": ("label", "class", "image class"),
                "specimen": ("specimen", "specimen id")}


def _read_csv_list(path: Path, skip_bad: bool) -> Inputs:
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not numbered:
        raise DataError("empty CSV (expected a header with a 'file' column)", path)
    header_line, header = numbered[0]
    names = [h.strip().lower() for h in header]
    cols = {key: next((names.index(a) for a in aliases if a in names), None)
            for key, aliases in _CSV_COLUMNS.items()}
    if cols["file"] is None:
        raise DataError(f"no 'file' column in the header {','.join(header)!r} (columns: "
                        "file, and optionally id, label, specimen)", path, header_line)
    found, bad, ids = [], [], FirstLines(path)
    for line, row in numbered[1:]:
        def get(key):
            col = cols[key]
            return row[col].strip() if col is not None and col < len(row) else ""
        file = get("file")
        if not file:
            bad.append(DataError("empty 'file' value", path, line))
            continue
        image = Path(file) if Path(file).is_absolute() else path.parent / file
        cell_id = get("id") or str(Path(file).with_suffix(""))
        if dup := ids.duplicate(cell_id, f"duplicate cell id {cell_id!r}", line):
            bad.append(dup)
            continue
        ids.accept(cell_id, line)
        found.append(Cell(cell_id, image, get("label") or None, get("specimen") or None, line))
    if bad and not skip_bad:
        raise bad[0]
    return Inputs("csv", found, bad)


def _keep_split(inputs: Inputs, images: Path, split: str, data: DataFolder | None) -> list[Cell]:
    if not inputs.kind.startswith("i3a"):
        raise UserError(f"--split needs an I3A folder as IMAGES, not a {inputs.kind} "
                        f"({images}): list the cells you want in a CSV instead")
    if data is not None and data.split_csv(split).is_file():
        listed = {i3a.normalise_id(line.split(",")[0]) for line in
                  data.split_csv(split).read_text().splitlines()[1:] if line.strip()}
        return [c for c in inputs.cells if c.id in listed]
    if inputs.kind == "i3a-presplit":
        return [c for c in inputs.cells if inputs.splits.get(c.id) == split]
    raise UserError(f"--split {split}: the run's data folder (with splits/{split}.csv) is not "
                    "available; give DATA_DIR=<the data folder the run was trained on> (--data-dir)")


def load_views(cells: list[Cell], *, stretch: bool, skip_bad: bool, progress: bool = True
               ) -> tuple[list[Cell], np.ndarray, list[DataError]]:
    """Every cell decoded and resized as the LMDB build does; bad files stop here (or, with
    skip_bad, are listed) before anything is written."""
    kept, views, bad = [], [], []
    for cell in tqdm(cells, desc="read cells", unit="cell", disable=not progress,
                     mininterval=1.0):
        img = cellio.decode(cell.file)
        if img is None:
            reason = ("no such file" if not cell.file.is_file()
                      else "unreadable or truncated image")
            if not skip_bad:
                raise DataError(f"{reason} (--skip-bad leaves such files out)", cell.file,
                                cell.line)
            bad.append(DataError(reason, cell.file, cell.line))
            continue
        kept.append(cell)
        views.append(cellio.net_view(img, stretch=stretch))
    size = views[0].shape if views else (0, 0)
    return kept, (np.stack(views) if views else np.empty((0, *size), np.uint8)), bad


def label_index(name: str, classes: tuple[str, ...], where: Cell) -> int:
    """A class name given with a cell -> its index in the model's class order."""
    lowered = [c.lower() for c in classes]
    if name.strip().lower() in lowered:
        return lowered.index(name.strip().lower())
    try:     # the spellings the I3A reader accepts ("Nuclear membrane", ...)
        canonical = paper.CLASSES[i3a.parse_label(name)]
        if canonical.lower() in lowered:
            return lowered.index(canonical.lower())
    except ValueError:
        pass
    raise DataError(f"unknown class label {name!r} for {where.file.name} (the model's "
                    f"classes: {', '.join(classes)})", where.file, where.line)

