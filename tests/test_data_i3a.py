"""The I3A reader (section 3.1): both layouts, tolerant parsing, and bad input refused by
`make data` before anything is written (issue 4, item 1)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dri_hep2 import cli, paper
from dri_hep2.data import i3a

TOOL = Path(__file__).resolve().parent.parent / "tools" / "make_data.py"
_spec = importlib.util.spec_from_file_location("make_data", TOOL)
make_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_data)


def _png(path: Path, value: int = 20, side: int = 10) -> None:
    ok, data = cv2.imencode(".png", np.full((side, side), value, np.uint8))
    path.write_bytes(data.tobytes())


def contest_folder(root: Path, n_per_class: int = 6, csv_text: str | None = None) -> Path:
    """A tiny contest-layout folder: IDs in class blocks, masks, header + extra columns."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["Image ID,Image class,Intensity,Specimen ID"]
    cell = 1
    for label, name in enumerate(paper.CLASSES):
        for _ in range(n_per_class):
            _png(root / f"{cell:05d}.png", 10 + label)
            _png(root / f"{cell:05d}_Mask.png", 255)
            rows.append(f"{cell:05d},{name},positive,{label + 1}")
            cell += 1
    (root / i3a.CSV_NAME).write_text(csv_text if csv_text is not None else "\n".join(rows) + "\n")
    return root


def test_contest_layout_reads_labels_masks_and_extra_columns(tmp_path):
    data = i3a.read_i3a(contest_folder(tmp_path / "i3a"))
    assert data.layout == "contest"
    assert [r.label for r in data.records] == [c for c in range(6) for _ in range(6)]
    first = data.records[0]
    assert (first.id, first.specimen, first.intensity) == ("00001", "1", "positive")
    assert first.mask.name == "00001_Mask.png"


def test_bom_crlf_lowercase_and_unpadded_ids_are_accepted(tmp_path):
    root = contest_folder(tmp_path / "i3a")
    text = (root / i3a.CSV_NAME).read_text().splitlines()
    rows = [text[0]] + [f"{int(line.split(',')[0])},{line.split(',')[1].lower()}"
                        for line in text[1:]]
    (root / i3a.CSV_NAME).write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    data = i3a.read_i3a(root)
    assert len(data.records) == 36 and data.records[0].id == "00001"
    assert sorted({r.label for r in data.records}) == list(range(6))


def test_presplit_layout_with_class_folders_keeps_its_split(tmp_path):
    root = tmp_path / "course"
    cell = 1
    for folder in ("training", "validation", "test"):
        for name in paper.CLASSES:
            (root / folder / name.lower()).mkdir(parents=True)
            _png(root / folder / name.lower() / f"{cell}.png")
            cell += 1
    data = i3a.read_i3a(root)
    assert data.layout == "presplit"
    assert [r.split for r in data.records[:6]] == ["train"] * 6
    assert [r.label for r in data.records[6:12]] == list(range(6))


def _corrupt(kind: str, root: Path) -> str:
    """Apply one kind of bad input; return the text the error message must contain."""
    csv_path = root / i3a.CSV_NAME
    lines = csv_path.read_text().splitlines()
    if kind == "missing image":
        (root / "00003.png").unlink()
        return f"{csv_path}:4: image file 00003.png missing"
    if kind == "truncated png":
        data = (root / "00005.png").read_bytes()
        (root / "00005.png").write_bytes(data[: len(data) // 2])
        return f"{root / '00005.png'}: unreadable or truncated PNG"
    if kind == "unknown label":
        lines[2] = "00002,Mitotic"
        csv_path.write_text("\n".join(lines) + "\n")
        return f"{csv_path}:3: unknown class label 'Mitotic'"
    if kind == "duplicate id":
        lines.append("2,Speckled")
        csv_path.write_text("\n".join(lines) + "\n")
        return f"{csv_path}:{len(lines)}: duplicate image ID 00002 (first on line 3)"
    if kind == "empty csv":
        csv_path.write_text("")
        return f"{csv_path}: empty CSV"
    if kind == "missing header":
        csv_path.write_text("\n".join(lines[1:]) + "\n")
        return f"{csv_path}:1: missing header"
    if kind == "image without row":
        _png(root / "00099.png")
        return f"{root / '00099.png'}: image has no row in gt_training.csv"
    if kind == "header only":
        csv_path.write_text(lines[0] + "\n")
        return f"{csv_path}: CSV has a header but no rows"
    if kind == "short row":
        lines[3] = "00003"
        csv_path.write_text("\n".join(lines) + "\n")
        return f"{csv_path}:4: row has 1 column(s), expected at least 2"
    if kind == "no csv":
        csv_path.unlink()
        return f"{root}: no gt_training.csv here and no training/validation/test folders"
    if kind == "pre-split without validation/ and test/":
        (root / "training").mkdir()
        return f"{root}: pre-split layout needs training/, validation/ and test/; missing " \
               "validation, test"
    if kind == "no folder":
        shutil.rmtree(root)
        return f"{root}: not a folder"
    raise AssertionError(kind)


BAD = ["missing image", "truncated png", "unknown label", "duplicate id", "empty csv",
       "missing header", "image without row", "header only", "short row", "no csv",
       "pre-split without validation/ and test/", "no folder"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_is_refused_with_its_place_and_nothing_written(kind, tmp_path, capsys):
    root = contest_folder(tmp_path / "i3a")
    expected = _corrupt(kind, root)
    data_dir = tmp_path / "data"
    rc = cli.run(make_data.main, ["--i3a", str(root), "--data-dir", str(data_dir), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert expected in err, err
    assert not data_dir.exists() or not any(data_dir.rglob("*"))


def test_skip_bad_builds_without_the_bad_items_and_lists_them(tmp_path):
    root = contest_folder(tmp_path / "i3a")
    for kind in ("missing image", "truncated png", "unknown label", "image without row"):
        _corrupt(kind, root)
    data_dir = tmp_path / "data"
    assert cli.run(make_data.main, ["--i3a", str(root), "--data-dir", str(data_dir),
                                    "--quiet", "--skip-bad"]) == 0
    skipped = (data_dir / "skipped.csv").read_text()
    assert skipped.count("\n") == 1 + 4, skipped
    for text in ("00003.png missing", "truncated PNG", "'Mitotic'", "00099.png"):
        assert text in skipped
    listed = "".join((data_dir / "splits" / f"{s}.csv").read_text() for s in ("train", "val", "test"))
    assert all(f"{i:05d}," not in listed for i in (2, 3, 5))
    assert len(listed.splitlines()) == 3 + 36 - 3


def test_the_tool_itself_exits_2_with_one_line_and_no_traceback(tmp_path):
    """The command line as make runs it: a bad folder is one line on stderr, exit status 2."""
    root = contest_folder(tmp_path / "i3a")
    expected = _corrupt("unknown label", root)
    out = subprocess.run([sys.executable, str(TOOL), "--i3a", str(root), "--data-dir",
                          str(tmp_path / "data"), "--quiet"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith("make_data.py: error: ") and expected in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()
