"""The folder-per-class layout (ledger C4): `<root>/<class>/*.png|tif|tiff|bmp`, with an
optional `specimens.csv` at the top that gives each image its specimen."""
from __future__ import annotations

from pathlib import Path

from .. import classes as class_lists
from ..classes import ClassList, spelling_key
from . import image_files, label_csv
from .records import CellRecord, CellSet, DataError, FirstLines, finish

SPECIMENS_CSV = "specimens.csv"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and image_files.is_cell_image(p))


def class_folders(root: Path) -> list[Path]:
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
    """One folder per class: `<root>/<class>/*.png|tif|tiff|bmp` (`*_mask.*` ignored); cell ID
    `<class folder>/<file stem>`. An optional `specimens.csv` at the top, `image,specimen`
    (path relative to the root, or the cell ID), gives the specimens."""
    folders = class_folders(root)
    if len(folders) < 2:
        raise DataError("the folder-per-class layout needs two or more sub-folders of images "
                        f"(found {len(folders)})", root)
    classes = class_list_of([d.name for d in folders])
    bad: list[DataError] = []
    records: dict[str, CellRecord] = {}
    for folder in folders:
        label = classes.label(folder.name)
        masks = image_files.masks(folder)
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
    return finish(root, "folders", list(records.values()), bad, skip_bad, meta, classes,
                  "folders")


def _with_specimens(path: Path, root: Path, records: dict[str, CellRecord],
                    bad: list[DataError]) -> dict[str, CellRecord]:
    """The records with the specimens of `specimens.csv`; every image needs a row."""
    by_key = {}
    for cell_id, rec in records.items():
        by_key[cell_id] = by_key[rec.image.relative_to(root).as_posix()] = cell_id
    specimen: dict[str, str] = {}
    rows = FirstLines(path)
    for line, row in label_csv.read_table(path, "image,specimen", ("image", "file", "id"),
                                          ("specimen",), {}):
        # read_table names the two columns `id` and `class`: here the image and its specimen.
        key = row["id"].replace("\\", "/")
        cell_id = by_key.get(key) or by_key.get(key.rsplit(".", 1)[0])
        if cell_id is None:
            bad.append(DataError(f"no image {row['id']!r} under {root}", path, line))
        elif dup := rows.duplicate(cell_id, f"duplicate row for {cell_id}", line):
            bad.append(dup)
        elif not row["class"].strip():
            bad.append(DataError(f"empty specimen for {cell_id}", path, line))
        else:
            specimen[cell_id] = row["class"].strip()
            rows.accept(cell_id, line)
    out = {}
    for cell_id, rec in records.items():
        if cell_id not in specimen:
            bad.append(DataError(f"image has no row in {SPECIMENS_CSV}", rec.image))
            continue
        out[cell_id] = CellRecord(rec.id, rec.label, rec.image, rec.mask, specimen[cell_id])
    return out
