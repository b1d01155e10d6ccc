"""What every reader of `make data` (the registry dri_hep2.data.formats) is called with,
produces and refuses with: its options, the cell record, the set of them, the error naming file
and line, the "duplicate ID (first on line N)" bookkeeping, and `finish`, the rule for bad input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable

from .. import classes as class_lists
from .. import ledger
from ..classes import ClassList
from ..errors import UserError


@dataclass(frozen=True)
class ReaderOptions:
    """Knobs of the readers, one set for every format since `read_cells` calls any reader with
    it (only I3A Task 2 reads any so far: how cells are cut from its masks, C3)."""
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


class DataError(UserError):
    """Bad input: `file` (and `line` of a CSV) say where, `reason` what. Every reader raises
    it."""

    def __init__(self, reason: str, file: str | Path, line: int | None = None):
        self.reason, self.file, self.line = reason, Path(file), line
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        # Workers return these to the parent: pickle by the constructor's own arguments.
        return type(self), (self.reason, self.file, self.line)


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
class CellSet:
    """What a reader found: the records, their class list, and what it left out."""
    layout: str                                   # "contest" or "presplit" (I3A), ...
    records: list[CellRecord]
    skipped: list[DataError] = field(default_factory=list)
    classes: ClassList = class_lists.I3A
    format: str = "i3a"                           # dri_hep2.data.formats.FORMATS key
    # Files besides the cell images that decide the outputs (label CSV, Task 2 masks): hashed
    # into the build hash with the images.
    meta_files: list[Path] = field(default_factory=list)


class FirstLines:
    """The CSV line each ID of a list was accepted on, so that a second row with that ID is
    refused as "<what> (first on line N)". An ID counts once its row is accepted: a row
    refused for another reason does not claim it."""

    def __init__(self, path: Path):
        self.path = path
        self._lines: dict[Hashable, int] = {}

    def duplicate(self, key: Hashable, what: str, line: int) -> DataError | None:
        """The error for `key` met again on `line` (`what` names it), or None."""
        first = self._lines.get(key)
        return None if first is None else DataError(f"{what} (first on line {first})",
                                                    self.path, line)

    def accept(self, key: Hashable, line: int) -> None:
        self._lines[key] = line

    def line(self, key: Hashable) -> int:
        return self._lines[key]


def finish(root: Path, layout: str, records: list[CellRecord], bad: list[DataError],
           skip_bad: bool, meta_files: list[Path] = (), classes: ClassList = class_lists.I3A,
           format: str = "i3a") -> CellSet:
    """The set, or the first problem (with a count of the others) unless `skip_bad`."""
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more problem(s); --skip-bad leaves them out)" \
            if len(bad) > 1 else " (--skip-bad leaves such items out)"
        raise DataError(bad[0].reason + more, bad[0].file, bad[0].line)
    if not records:
        raise DataError("no usable cell images found", root)
    records.sort(key=lambda r: r.id)
    return CellSet(layout, records, bad, classes, format, list(meta_files))
