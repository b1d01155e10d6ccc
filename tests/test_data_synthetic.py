"""The synthetic replica: I3A's contest layout, class counts and ID blocks (section 3.1,
Table 2), dim 8-bit cells with masks, seeded (issue 4, item 2)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from dri_hep2 import ledger, paper
from dri_hep2.data import i3a, synthetic


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    return synthetic.make_replica(tmp_path_factory.mktemp("syn") / "i3a", scale=0.02,
                                  progress=False, workers=2)


def test_full_scale_counts_and_id_blocks_are_i3a_s():
    assert synthetic.class_counts(1.0) == paper.I3A_COUNTS
    plan = synthetic._plan(paper.I3A_COUNTS, ledger.RANDOM_SEED)
    firsts = [next(cid for cid, lab, _ in plan if lab == c) for c in range(paper.NUM_CLASSES)]
    assert firsts == ["00001", "02495", "05326", "07924", "10665", "12873"]   # reference facts 1
    assert plan[-1][0] == f"{paper.I3A_TOTAL:05d}"


def test_replica_is_read_as_contest_layout(replica):
    data = i3a.read_i3a(replica)
    counts = tuple(sum(r.label == c for r in data.records) for c in range(paper.NUM_CLASSES))
    assert counts == synthetic.class_counts(0.02) and data.layout == "contest"
    assert (replica / i3a.CSV_NAME).read_text().startswith("Image ID,Image class,")
    assert all(r.mask is not None and r.specimen for r in data.records)
    assert {r.intensity for r in data.records} == {"positive", "intermediate"}
    assert (replica / "montage.png").is_file()


def test_cells_are_dim_8bit_grey_54_to_111_px_with_binary_masks(replica):
    data = i3a.read_i3a(replica)
    peaks = {"positive": [], "intermediate": []}
    for rec in data.records:
        img = cv2.imread(str(rec.image), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(rec.mask), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.ndim == 2 and img.shape == mask.shape
        assert all(54 <= s <= 111 for s in img.shape)
        assert set(np.unique(mask)) <= {0, 255} and mask.any()
        peaks[rec.intensity].append(int(img.max()))
    assert 40 <= np.median(peaks["intermediate"]) <= 75
    assert np.median(peaks["positive"]) > 1.5 * np.median(peaks["intermediate"])


def test_same_seed_same_replica_whatever_the_workers(replica, tmp_path):
    again = synthetic.make_replica(tmp_path / "again", scale=0.02, progress=False, workers=1,
                                   montage=False)
    for name in ("00001.png", "00050_Mask.png", f"{sum(synthetic.class_counts(0.02)):05d}.png",
                 i3a.CSV_NAME):
        assert (again / name).read_bytes() == (replica / name).read_bytes()
    other = synthetic.make_replica(tmp_path / "other", scale=0.02, seed=3, progress=False,
                                   montage=False)
    assert (other / "00001.png").read_bytes() != (replica / "00001.png").read_bytes()
