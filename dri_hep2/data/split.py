"""The paper's train / validation / test split (section 3.2, Table 2)."""
from __future__ import annotations

import numpy as np

from .. import ledger, paper
from ..errors import UserError


def split_counts(class_count: int) -> tuple[int, int, int]:
    """Cells of one class in (train, val, test) under the paper's 64/16/20 split.

    train = round(0.64 n) reproduces Table 2's training row for all six I3A classes; val =
    round(0.16 n) and test takes the rest, so no cell is lost to rounding.
    """
    f_train, f_val, _ = paper.SPLIT_FRACTIONS
    train = round(f_train * class_count)
    val = round(f_val * class_count)
    return train, val, class_count - train - val


SPLITS = ("train", "val", "test")


def i3a_val_size() -> int:
    """Validation cells of I3A under the paper's split: 2176 (Table 2's I3A row, D10)."""
    return sum(split_counts(n)[1] for n in paper.I3A_COUNTS)


def split_records(records, *, seed: int = ledger.RANDOM_SEED,
                  protocol: str = "cell") -> dict[str, list]:
    """Cell records -> {"train", "val", "test"} lists, sorted by ID.

    protocol "cell" (the paper's, section 3.2): stratified per class, a seeded shuffle of each
    class cut at `split_counts`, which reproduces Table 2's training row exactly.
    protocol "specimen": whole specimens go to one split (ASSUMPTIONS.md D9), per class,
    aiming at the same 64/16/20 counts; records need specimen IDs.
    Records that already carry a split (pre-split layout) keep it.
    """
    if all(r.split for r in records):
        return {s: sorted((r for r in records if r.split == s), key=lambda r: r.id)
                for s in SPLITS}
    if protocol not in ("cell", "specimen"):
        raise UserError(f"unknown split protocol {protocol!r} (cell or specimen)")
    if protocol == "specimen":
        missing = [r.id for r in records if not r.specimen]
        if missing:
            raise UserError(f"--protocol specimen needs a specimen ID for every cell; "
                             f"{len(missing)} have none (first: image {missing[0]})")
    out: dict[str, list] = {s: [] for s in SPLITS}
    for label in sorted({r.label for r in records}):
        of_class = sorted((r for r in records if r.label == label), key=lambda r: r.id)
        rng = np.random.default_rng([seed, label])
        parts = (_by_cell if protocol == "cell" else _by_specimen)(of_class, rng)
        for name, part in zip(SPLITS, parts):
            out[name].extend(part)
    return {s: sorted(v, key=lambda r: r.id) for s, v in out.items()}


def _by_cell(cells, rng):
    train, val, _ = split_counts(len(cells))
    shuffled = [cells[i] for i in rng.permutation(len(cells))]
    return shuffled[:train], shuffled[train:train + val], shuffled[train + val:]


def _by_specimen(cells, rng):
    """Specimens of one class, in seeded order, each to the split furthest below its target."""
    targets = split_counts(len(cells))
    groups: dict[str, list] = {}
    for r in cells:
        groups.setdefault(r.specimen, []).append(r)
    names = sorted(groups)
    parts: tuple[list, list, list] = ([], [], [])
    # Largest specimens first so the small ones can even out the counts; ties in seeded order.
    order = sorted(rng.permutation(len(names)), key=lambda i: -len(groups[names[i]]))
    for i in order:
        # Empty splits first (each split gets a specimen when there are three or more), then
        # the largest shortfall relative to its target.
        k = max(range(3), key=lambda j: (not parts[j], (targets[j] - len(parts[j]))
                                         / max(targets[j], 1)))
        parts[k].extend(groups[names[i]])
    return parts

