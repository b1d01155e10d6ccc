"""Atomic writes leave the old file or the whole new one, with ordinary permissions."""
from __future__ import annotations

import os
import stat

import pytest

from dri_hep2 import atomic


def test_write_text_replaces_whole_file_with_umask_mode(tmp_path):
    target = tmp_path / "a" / "out.txt"
    atomic.write_text(target, "one")
    atomic.write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_staged_dir_failure_keeps_old_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "db"
    with atomic.staged_path(target, is_dir=True) as tmp:
        (tmp / "data").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.staged_path(target, is_dir=True) as tmp:
            (tmp / "data").write_text("half")
            raise RuntimeError("interrupted")
    assert (target / "data").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~mask
