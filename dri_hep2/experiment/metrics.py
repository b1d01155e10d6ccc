"""The paper's measures (section 3.3, Eq. 3; Table 4) and the sum-layer fusion (section 2.1).

MCA = mean over classes of the per-class correct classification rate (recall), the ICPR 2014
measure; ACA = overall accuracy (correct / total), as Gao et al. [11] report it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .. import ledger, paper
from . import stats

# Table 3(b): which classifier branches (FC1, FC2, FC3) each DRI_x fuses.
COMBOS: dict[str, tuple[int, ...]] = {"3": (3,), "1+3": (1, 3), "2+3": (2, 3), "1+2+3": (1, 2, 3)}
FULL_COMBO = "1+2+3"


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int],
                     num_classes: int = paper.NUM_CLASSES) -> np.ndarray:
    """Counts; row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    for name, values in (("label", labels), ("prediction", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return confusion


def per_class_rates(confusion: np.ndarray) -> np.ndarray:
    """CCR_k of Eq. 3: correct / support per true class; NaN for a class with no samples."""
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)


def mca(confusion: np.ndarray) -> float:
    """Eq. 3. Classes absent from the evaluated set are left out of the mean (not counted 0)."""
    rates = per_class_rates(confusion)
    if np.all(np.isnan(rates)):
        raise ValueError("MCA of an empty confusion matrix")
    return float(np.nanmean(rates))


def aca(confusion: np.ndarray) -> float:
    """Average classification accuracy (Table 4): correct / total."""
    total = confusion.sum()
    if total == 0:
        raise ValueError("ACA of an empty confusion matrix")
    return float(np.trace(confusion) / total)


def fuse(branch_probs: Mapping[int, np.ndarray], combo: str) -> np.ndarray:
    """The sum layer over the branches of `combo` (a COMBOS key): N x K summed outputs.

    Our reading sums softmax probabilities, as the deploy net's Eltwise SUM `prob` computes it
    (ASSUMPTIONS.md N13, T2); given raw classifier scores it computes the other reading.
    """
    branches = COMBOS[combo]
    missing = [b for b in branches if b not in branch_probs]
    if missing:
        raise KeyError(f"combination {combo} needs branch FC{missing[0]}, not in the net")
    return np.sum([np.asarray(branch_probs[b], dtype=np.float64) for b in branches], axis=0)


def scores(labels: Sequence[int], probs: np.ndarray, *, intervals: bool = False,
           groups: Sequence[str] | None = None,
           resamples: int = ledger.BOOTSTRAP_RESAMPLES,
           classes: Sequence[str] = paper.CLASSES) -> dict:
    """MCA, ACA, per-class rates and confusion of arg-max predictions from N x K scores.

    `intervals` adds 95 % intervals (ledger T8): `aca_ci` and `per_class_ci` by Wilson,
    `mca_ci` by the stratified bootstrap, resampling `groups` (specimens) when given.
    `classes`: the class names, in label order (the paper's six by default).
    """
    return prediction_scores(labels, np.argmax(probs, axis=1), intervals=intervals,
                             groups=groups, resamples=resamples, classes=classes)


def prediction_scores(labels: Sequence[int], predicted: Sequence[int], *,
                      intervals: bool = False, groups: Sequence[str] | None = None,
                      resamples: int = ledger.BOOTSTRAP_RESAMPLES,
                      classes: Sequence[str] = paper.CLASSES) -> dict:
    """`scores` of given predictions (class labels), e.g. several folds' pooled."""
    labels = np.asarray(labels)
    predicted = np.asarray(predicted)
    confusion = confusion_matrix(labels, predicted, len(classes))
    rates = per_class_rates(confusion)
    out = {
        "mca": mca(confusion),
        "aca": aca(confusion),
        "per_class": {name: (None if np.isnan(r) else float(r))
                      for name, r in zip(classes, rates)},
        "confusion": confusion.tolist(),
    }
    if intervals:
        # As lists: what eval.json stores and reads back.
        support = confusion.sum(axis=1)
        out["mca_ci"] = list(stats.bootstrap_mca(labels, predicted == labels, groups, resamples))
        out["aca_ci"] = list(stats.wilson(int(np.trace(confusion)), int(confusion.sum())))
        out["per_class_ci"] = {name: (list(ci) if (ci := stats.wilson(int(confusion[k, k]),
                                                                     int(support[k]))) else None)
                               for k, name in enumerate(classes)}
    return out


def evaluate_combos(labels: Sequence[int], branch_probs: Mapping[int, np.ndarray],
                    **interval_options) -> dict[str, dict]:
    """Scores of every Table 3(b) combination whose branches the net has (`interval_options`:
    the keyword options of `scores`, `classes` included)."""
    return {combo: scores(labels, fuse(branch_probs, combo), **interval_options)
            for combo, branches in COMBOS.items() if all(b in branch_probs for b in branches)}


def paired_tests(labels: Sequence[int], predictions: Mapping[str, np.ndarray],
                 against: str = FULL_COMBO) -> dict[str, dict]:
    """McNemar's exact test of each prediction against `against` on the same cells."""
    labels = np.asarray(labels)
    return {name: stats.mcnemar(pred == labels, predictions[against] == labels)
            for name, pred in predictions.items() if name != against}
