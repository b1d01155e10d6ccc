"""A data folder (make's DATA_DIR): the one place that names what `make data` writes there.

    lmdb/train, lmdb/val, lmdb/test   Caffe Datum LMDBs (1x76x76 uint8, label = index in the
                                      folder's class list, `classes()`: 0-5 on I3A)
    lmdb/mean.binaryproto             mean image of the augmented training LMDB
    splits/{train,val,test}.csv       the cells of each split: `Image ID,Image class,Specimen ID`
                                      (the I3A reader's own CSV format; specimen empty if unknown)
    skipped.csv                       what --skip-bad left out (absent when nothing was)
    manifest.json                     inputs, parameters, class list, counts, build hash

docs/data.md describes the formats.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .. import atomic
from ..classes import I3A, ClassList
from ..errors import UserError
from ..folders import Folder, member
from .split import SPLITS


class DataFolder(Folder):
    lmdb_dir = member("lmdb")
    mean = member("lmdb/mean.binaryproto")
    splits_dir = member("splits")
    manifest = member("manifest.json")
    skipped = member("skipped.csv")

    def resolve(self) -> "DataFolder":
        return DataFolder(self.path.resolve())

    def lmdb(self, split: str) -> Path:
        return self.lmdb_dir / split

    def split_csv(self, split: str) -> Path:
        return self.splits_dir / split_csv_name(split)

    def read_split(self, split: str) -> list[dict[str, str | None]]:
        """The cells of a split as written by `write_split_csvs`: id, class, specimen (None
        where unknown, or in a folder built before specimens were recorded)."""
        path = self.require_file(self.split_csv(split))
        rows = csv.DictReader(io.StringIO(path.read_text()))
        return [{"id": r["Image ID"], "class": r["Image class"],
                 "specimen": r.get("Specimen ID") or None} for r in rows]

    def classes(self) -> ClassList:
        """The class list of this folder's labels, as its manifest records it; I3A's (the
        paper's six) for a folder without one or built before class lists were recorded."""
        try:
            manifest = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return I3A
        return ClassList.from_manifest(manifest.get("classes"))

    def require_file(self, path: Path) -> Path:
        if not path.is_file():
            raise UserError(f"{path} missing: run 'make data I3A=<your I3A folder> "
                            f"DATA_DIR={self.path}' first")
        return path

    def outputs(self) -> list[Path]:
        """Every output the manifest certifies."""
        return ([self.lmdb(s) for s in SPLITS] + [self.mean]
                + [self.split_csv(s) for s in SPLITS])

    def read_manifest(self) -> dict | None:
        """The manifest, if it and every output it names are present (else None)."""
        try:
            manifest = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return None
        return manifest if all(p.exists() for p in self.outputs()) else None

    def require(self, *splits: str, mean: bool = True) -> "DataFolder":
        """Refuse a folder without the LMDBs (and mean) a tool reads, saying what makes them."""
        needed = [self.lmdb(s) for s in splits] + ([self.mean] if mean else [])
        missing = [p for p in needed if not p.exists()]
        if missing:
            raise UserError(
                f"{missing[0]} missing: DATA_DIR={self.path} is not a data folder of "
                f"'make data'. Run 'make data I3A=<your I3A folder> DATA_DIR={self.path}' "
                "first (without I3A: 'make synthetic', then 'make data I3A=data/synthetic_i3a')")
        return self


def split_csv_name(split: str) -> str:
    return f"{split}.csv"


def write_split_csvs(splits: dict[str, list], folder: Path, classes: ClassList = I3A) -> None:
    """{split}.csv in `folder` (the staged splits/): one row per cell record, its class by
    name in `classes`."""
    for name, recs in splits.items():
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["Image ID", "Image class", "Specimen ID"])
        writer.writerows([r.id, classes.names[r.label], r.specimen or ""] for r in recs)
        atomic.write_text(Path(folder) / split_csv_name(name), buf.getvalue())
