"""A data folder (make's DATA_DIR): the one place that names what `make data` writes there.

    lmdb/train, lmdb/val, lmdb/test   Caffe Datum LMDBs (1x76x76 uint8, label 0-5)
    lmdb/mean.binaryproto             mean image of the augmented training LMDB
    splits/{train,val,test}.csv       the cells of each split (`Image ID,Image class`)
    skipped.csv                       what --skip-bad left out (absent when nothing was)
    manifest.json                     inputs, parameters, counts, build hash

docs/data.md describes the formats.
"""
from __future__ import annotations

import json
from pathlib import Path

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
        return self.splits_dir / f"{split}.csv"

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
