"""The paper's train / validation / test split (section 3.2, Table 2)."""
from __future__ import annotations

from .. import paper


def split_counts(class_count: int) -> tuple[int, int, int]:
    """Cells of one class in (train, val, test) under the paper's 64/16/20 split.

    train = round(0.64 n) reproduces Table 2's training row for all six I3A classes; val =
    round(0.16 n) and test takes the rest, so no cell is lost to rounding.
    """
    f_train, f_val, _ = paper.SPLIT_FRACTIONS
    train = round(f_train * class_count)
    val = round(f_val * class_count)
    return train, val, class_count - train - val
