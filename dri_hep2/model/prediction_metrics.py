"""`make predict`'s metrics.json, with ground truth: the measures of `make eval`
(dri_hep2.experiment.metrics) on the cells, and the same on one call per specimen."""
from __future__ import annotations

import numpy as np

from ..experiment import metrics


def prediction_metrics(labels: np.ndarray, probs: dict[int, np.ndarray],
                       specimens: dict[str, dict], rule: str, classes: tuple[str, ...],
                       truth: tuple[np.ndarray, int] | None) -> dict:
    """The fusions of Table 3(b) with their 95 % intervals (the bootstrap resampling specimens
    where every cell has one, ledger T8), each branch, and for the specimens (`truth`: their
    true classes and how many were mixed, specimens.specimen_truth) the same on their calls."""
    groups = [None] * len(labels)
    for name, s in specimens.items():
        for row in s["rows"]:
            groups[row] = name
    interval_options = dict(intervals=True, groups=groups if all(groups) else None)
    combos = metrics.evaluate_combos(labels, probs, **interval_options)
    full = metrics.FULL_COMBO if metrics.FULL_COMBO in combos else list(combos)[-1]
    keep = ("mca", "aca", "per_class", "mca_ci", "aca_ci", "per_class_ci")
    out = {"n": int(len(labels)), "classes": list(classes), "combo": full, **combos[full],
           "combos": {c: {k: s[k] for k in keep} for c, s in combos.items()},
           "branches": {str(b): {k: v for k, v in metrics.scores(labels, p).items()
                                 if k in ("mca", "aca")} for b, p in sorted(probs.items())}}
    if specimens:
        true_classes, mixed = truth
        # scores() takes the arg-max of what it is given: one-hot calls keep the rule's call.
        onehot = np.eye(len(classes))[[s["call"] for s in specimens.values()]]
        out["specimen"] = {"n": len(specimens), "rule": rule, "mixed_label_specimens": mixed,
                           **metrics.scores(true_classes, onehot)}
    return out
