"""MCA (Eq. 3), ACA (Table 4) and the Table 3(b) fusions on branch outputs with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from dri_hep2.experiment import metrics

# Eight cells: three Homogeneous, one of every other class.
LABELS = [0, 0, 0, 1, 2, 3, 4, 5]


def probs(predicted, peak):
    """Rows with `peak` on the predicted class and the rest spread evenly."""
    out = np.full((len(predicted), 6), (1 - peak) / 5)
    out[np.arange(len(predicted)), predicted] = peak
    return out


# FC3 mistakes the Golgi cell for NuMem (0.6 each, 0.08 elsewhere).
FC3 = probs([0, 0, 0, 1, 2, 3, 4, 4], 0.6)
# FC1 is confident (0.9): right on Golgi, wrong on the first Homogeneous cell (says Speckled).
FC1 = np.vstack([probs([1], 0.9), probs([0, 0, 1, 2, 3, 4, 5], 0.9)])
# FC2 agrees with FC3 except a weak (0.5) Golgi vote on the last cell.
FC2 = np.vstack([FC3[:7], probs([5], 0.5)])
BRANCHES = {1: FC1, 2: FC2, 3: FC3}


def test_fused_combinations_match_hand_computed_values():
    result = metrics.evaluate_combos(LABELS, BRANCHES)
    # DRI3: Golgi lost -> per class (1, 1, 1, 1, 1, 0): MCA 5/6; 7 of 8 right.
    assert result["3"]["mca"] == pytest.approx(5 / 6)
    assert result["3"]["aca"] == pytest.approx(7 / 8)
    # DRI1+3: Golgi 0.9+0.08 > NuMem 0.02+0.6; first cell S 0.98 > H 0.62, so H is 2/3.
    assert result["1+3"]["mca"] == pytest.approx((2 / 3 + 5) / 6)
    assert result["1+3"]["aca"] == pytest.approx(7 / 8)
    # DRI2+3: Golgi 0.5+0.08 < NuMem 0.1+0.6: FC2 does not help alone (as in the paper).
    assert result["2+3"]["mca"] == pytest.approx(5 / 6)
    # DRI1+2+3: Golgi 1.48 > 0.72 and H 1.22 > S 1.06: all right.
    assert result["1+2+3"]["mca"] == 1.0 and result["1+2+3"]["aca"] == 1.0
    assert result["3"]["confusion"][5][4] == 1 and result["3"]["confusion"][5][5] == 0
    assert result["1+3"]["per_class"]["Homogeneous"] == pytest.approx(2 / 3)


def test_fusion_sums_probabilities():
    np.testing.assert_allclose(metrics.fuse(BRANCHES, "1+3"), FC1 + FC3)
    with pytest.raises(KeyError, match="FC2"):
        metrics.fuse({1: FC1, 3: FC3}, "2+3")
    # Nets without auxiliary branches still get DRI3.
    assert list(metrics.evaluate_combos(LABELS, {3: FC3})) == ["3"]


def test_mca_weights_classes_equally_aca_cells():
    confusion = metrics.confusion_matrix([0] * 9 + [1], [0] * 9 + [0], num_classes=2)
    assert confusion.tolist() == [[9, 0], [1, 0]]
    assert metrics.aca(confusion) == pytest.approx(0.9)
    assert metrics.mca(confusion) == pytest.approx(0.5)


def test_absent_class_is_left_out_not_counted_zero():
    confusion = metrics.confusion_matrix([0, 1], [0, 0], num_classes=3)
    rates = metrics.per_class_rates(confusion)
    assert rates[0] == 1.0 and rates[1] == 0.0 and np.isnan(rates[2])
    assert metrics.mca(confusion) == pytest.approx(0.5)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 6], [0, 0])
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 1], [0])
