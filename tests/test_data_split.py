"""The paper's split and class-balanced augmentation (section 3.2, Table 2)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dri_hep2 import paper
from dri_hep2.data import augment, build, i3a, lmdb_io, split
from dri_hep2.data.records import CellRecord
from dri_hep2.errors import UserError


@pytest.fixture(scope="module")
def full_count_replica(tmp_path_factory) -> Path:
    """I3A's exact class counts and ID blocks (Table 2, 13,596 cells), as 8x8 images, with
    specimen IDs (8 per class); tiny images keep it fast, the counts are what is tested."""
    root = tmp_path_factory.mktemp("i3a_full")
    ok, png = cv2.imencode(".png", np.full((8, 8), 30, np.uint8))
    rows, cell = ["Image ID,Image class,Specimen ID"], 1
    for label, n in enumerate(paper.I3A_COUNTS):
        for k in range(n):
            (root / f"{cell:05d}.png").write_bytes(png.tobytes())
            rows.append(f"{cell:05d},{paper.CLASSES[label]},{label * 8 + k * 8 // n}")
            cell += 1
    (root / i3a.CSV_NAME).write_text("\n".join(rows) + "\n")
    return root


def _per_class(records):
    return tuple(sum(r.label == c for r in records) for c in range(paper.NUM_CLASSES))


def test_table2_training_and_augmented_rows_exactly(full_count_replica):
    records = i3a.read_i3a(full_count_replica).records
    assert _per_class(records) == paper.I3A_COUNTS
    splits = split.split_records(records)
    train = _per_class(splits["train"])
    assert train == paper.TRAIN_COUNTS and sum(train) == paper.TRAIN_TOTAL
    assert augment.augmented_counts(train) == paper.AUGMENTED_COUNTS
    assert sum(augment.augmented_counts(train)) == paper.AUGMENTED_TOTAL
    assert len(augment.rotation_angles(0)) == 20 and len(augment.rotation_angles(paper.GOLGI)) == 60
    # 64/16/20 per class, nothing lost to rounding (section 3.2)
    for c, n in enumerate(paper.I3A_COUNTS):
        got = tuple(_per_class(splits[s])[c] for s in split.SPLITS)
        assert got == split.split_counts(n) and sum(got) == n


def test_no_cell_in_two_splits_and_same_seed_same_split(full_count_replica):
    records = i3a.read_i3a(full_count_replica).records
    a, b = split.split_records(records, seed=7), split.split_records(records, seed=7)
    ids = [{r.id for r in a[s]} for s in split.SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == paper.I3A_TOTAL
    assert all([r.id for r in a[s]] == [r.id for r in b[s]] for s in split.SPLITS)
    other = split.split_records(records, seed=8)
    assert [r.id for r in other["train"]] != [r.id for r in a["train"]]


def test_specimen_protocol_keeps_each_specimen_in_one_split(full_count_replica):
    records = i3a.read_i3a(full_count_replica).records
    splits = split.split_records(records, protocol="specimen")
    where = {}
    for s in split.SPLITS:
        for r in splits[s]:
            assert where.setdefault(r.specimen, s) == s, f"specimen {r.specimen} in two splits"
    # every class is in every split, and the training share stays near 64 %
    for s in split.SPLITS:
        assert all(_per_class(splits[s]))
    share = len(splits["train"]) / paper.I3A_TOTAL
    assert 0.55 < share < 0.75, share


def test_specimen_protocol_refuses_records_without_specimens(tmp_path):
    recs = [CellRecord(f"{k:05d}", k % 6, tmp_path / "x.png") for k in range(12)]
    with pytest.raises(UserError, match="specimen ID for every cell"):
        split.split_records(recs, protocol="specimen")


def test_rotation_is_about_the_centre_and_output_is_76(tmp_path):
    img = np.zeros((61, 61), np.uint8)
    img[30, 40] = 200                                   # 10 px right of the centre
    views = augment.cell_views(img, [0, 90, 180])
    assert views.shape == (3, paper.INPUT_SIZE, paper.INPUT_SIZE) and views.dtype == np.uint8
    # right of centre (row 30, column 40) -> above it after +90 degrees (counter-clockwise:
    # row 20, column 30) -> left of it after 180 (row 30, column 20); then 61 -> 76 px.
    zoom = paper.INPUT_SIZE / 61
    for view, (row, col) in zip(views, [(30, 40), (20, 30), (30, 20)]):
        assert view.max() > 50                   # the bright pixel survived, spread a little
        peak = np.unravel_index(np.argmax(view), view.shape)
        want = [(row + 0.5) * zoom - 0.5, (col + 0.5) * zoom - 0.5]   # pixel centres
        assert abs(peak[0] - want[0]) <= 1 and abs(peak[1] - want[1]) <= 1, (peak, want)


@pytest.mark.slow
def test_full_build_writes_table2_augmented_set(full_count_replica, tmp_path):
    """The whole `make data` build on I3A-sized input: 192,540 training Datums (Table 2)."""
    manifest = build.build_dataset(full_count_replica, tmp_path / "data", progress=False)
    assert manifest["splits"]["train"]["total"] == paper.AUGMENTED_TOTAL
    assert tuple(manifest["splits"]["train"]["per_class"]) == paper.AUGMENTED_COUNTS
    assert tuple(manifest["splits"]["train"]["cells_per_class"]) == paper.TRAIN_COUNTS
    env_entries = sum(1 for _ in lmdb_io.read_lmdb(tmp_path / "data" / "lmdb" / "train"))
    assert env_entries == paper.AUGMENTED_TOTAL
    assert json.loads((tmp_path / "data" / "manifest.json").read_text()) == manifest
