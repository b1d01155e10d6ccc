"""What the folder types (RunDir, DataFolder) share: a path, and files named once; and the
repository's own root (`REPO_ROOT`), the folder every default path is relative to.

    class RunDir(Folder):
        log = member("train.log")

`RunDir.log` is the name ("train.log": what a prototxt or a link writes), `run.log` the path
of that file in the folder `run.path`.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class member:
    def __init__(self, name: str):
        self.name = name

    def __get__(self, folder, owner=None) -> str | Path:
        return self.name if folder is None else folder.path / self.name


class Folder:
    """A folder of a known layout; accepted wherever a path is (os.PathLike)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name
