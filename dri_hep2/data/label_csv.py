"""The label CSVs of every layout `make data` reads, read one way: BOM- and CRLF-tolerant,
blank rows skipped, the header checked, each row numbered by its line for messages
(`DataError` with file and line)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .records import DataError


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="replace")      # BOM-tolerant


def delimiter(path: Path) -> str:
    """`;` when the first non-empty line has one and no comma, else `,`."""
    first = next((line for line in _text(path).splitlines() if line.strip()), "")
    return ";" if ";" in first and "," not in first else ","


def header(path: Path) -> list[str]:
    """The first row's cells, lower case (empty for an empty or unreadable file)."""
    try:
        rows = _rows(path, delimiter(path))
    except (OSError, UnicodeError):
        return []
    return [c.strip().lower() for c in rows[0][1]] if rows else []


def _rows(path: Path, sep: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-empty row; CRLF-tolerant."""
    lines = csv.reader(io.StringIO(_text(path), newline=""), delimiter=sep)
    return [(i + 1, row) for i, row in enumerate(lines) if any(c.strip() for c in row)]


def read_table(path: Path, expected: str, first: tuple[str, ...], second: tuple[str, ...],
               extras: dict[str, tuple[str, ...]], *, exact: bool = False,
               sep: str | None = None) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of a label CSV, each row as {"id", "class", extra keys}: the first column's
    header must contain one of `first` (`exact`: be one), the second's one of `second`; a later
    column whose header contains one of `extras[key]` is read as `key`. `sep` None: the
    separator `delimiter` finds."""
    sep = sep or delimiter(path)
    rows = _rows(path, sep)
    if not rows:
        raise DataError(f"empty CSV (expected header {expected!r})", path)
    header_line, cells = rows[0]
    names = [h.strip().lower() for h in cells]

    def fits(name: str, words: tuple[str, ...]) -> bool:
        return name in words if exact else any(w in name for w in words)

    if len(names) < 2 or not fits(names[0], first) or not fits(names[1], second):
        raise DataError(f"missing header: first row is {sep.join(cells)!r}, expected "
                        f"{expected!r} (more columns may follow)", path, header_line)
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


def one_csv(root: Path, fits, what: str) -> Path:
    """The one CSV in `root` that `fits(path, header)`; refuses several. When none fits but
    there is exactly one CSV, that one: its reader then says what is wrong with its header."""
    every = [p for p in sorted(root.glob("*.csv")) if p.is_file()]
    found = [p for p in every if fits(p, header(p))]
    if not found and len(every) == 1:
        return every[0]
    if not found:
        raise DataError(f"no CSV with header {what!r} here", root)
    if len(found) > 1:
        raise DataError(f"several CSVs with header {what!r} here "
                        f"({', '.join(p.name for p in found)}): keep one", root)
    return found[0]
