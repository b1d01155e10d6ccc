"""How far a figure can be trusted: confidence intervals and paired tests on test cells.

- Wilson's score interval for a proportion (ACA, each class's rate): right near 0 and 1,
  where the normal approximation leaves [0, 1] or has zero width.
- A bootstrap percentile interval for MCA (Eq. 3), stratified by true class so that every
  resample keeps each class's support: cells are resampled within their class, or, when
  specimen IDs are known, whole specimens within their class (cells of one specimen are not
  independent; ledger T8).
- McNemar's exact test between two classifiers on the same cells: only the cells exactly one
  of them gets right count; under the null each such cell goes either way with probability 1/2.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import ledger

Z95 = 1.959963984540054          # two-sided 95 % quantile of the standard normal


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of `successes` / `total`; None when there is nothing to count."""
    if total <= 0:
        return None
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    # At 0 and at `total` the bounds are exactly 0 and 1 (the formula leaves rounding there).
    return (0.0 if successes == 0 else max(0.0, centre - half),
            1.0 if successes == total else min(1.0, centre + half))


def bootstrap_mca(labels: Sequence[int], correct: Sequence[bool],
                  groups: Sequence[str] | None = None,
                  resamples: int = ledger.BOOTSTRAP_RESAMPLES, seed: int = ledger.RANDOM_SEED,
                  level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of MCA over `resamples` stratified bootstrap resamples.

    `correct[i]`: whether cell i was classified right. Within each true class, the resample
    draws as many cells as the class has (or, with `groups`, as many groups as the class has,
    each with all its cells); MCA is the mean over classes of hits / cells of the resample.
    """
    labels = np.asarray(labels)
    correct = np.asarray(correct, dtype=np.float64)
    if labels.size == 0:
        raise ValueError("bootstrap of an empty test set")
    rng = np.random.default_rng([seed, 0xB007])
    rates = []
    for c in np.unique(labels):
        in_class = labels == c
        # Cells sorted, specimens by name (np.unique): the interval does not depend on the
        # order the cells come in (make eval's LMDB order, make predict's file order).
        if groups is None:
            hits, sizes = np.sort(correct[in_class]), np.ones(int(in_class.sum()))
        else:
            names = np.asarray(groups)[in_class]
            _, index = np.unique(names, return_inverse=True)
            hits = np.bincount(index, weights=correct[in_class])
            sizes = np.bincount(index).astype(np.float64)
        draws = rng.integers(0, len(hits), size=(resamples, len(hits)))
        rates.append(hits[draws].sum(axis=1) / sizes[draws].sum(axis=1))
    mca = np.mean(rates, axis=0)
    tail = (1 - level) / 2
    lo, hi = np.quantile(mca, [tail, 1 - tail])
    return float(lo), float(hi)


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """Exact two-sided McNemar test of two classifiers on the same cells.

    `a_only` / `b_only`: cells only A / only B gets right; `p`: the probability, if both were
    equally good, of a split at least this uneven (twice the smaller binomial tail, capped
    at 1; 1 when they never disagree).
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test on {a.size} and {b.size} cells")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p": min(1.0, 2 * tail)}


def spread(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation, minimum and maximum of a series (seeds)."""
    v = np.asarray(values, dtype=np.float64)
    return {"n": int(v.size), "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}
