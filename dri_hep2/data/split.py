"""The paper's train / validation / test split (section 3.2, Table 2), the specimen split, and
the folds of cross-validation (`kfold`, `loso`) with each fold's validation part.

Protocols (`make data PROTOCOL=`, ASSUMPTIONS.md D9, D10, C6-C8):

    cell      the paper's: stratified 64/16/20 per class
    specimen  whole specimens to one split, aiming at 64/16/20 per class
    kfold     K stratified folds (seeded); fold k is the test part, the validation part is
              carved from the others (stratified, 0.16 / 0.80 of each class: the paper's ratio)
    loso      one fold per specimen (up to ledger.LOSO_MAX_FOLDS specimens), or K folds of
              whole specimens; the validation part is whole specimens of the others
"""
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
PROTOCOLS = ("cell", "specimen", "kfold", "loso")
FOLD_PROTOCOLS = ("kfold", "loso")


def i3a_val_size() -> int:
    """Validation cells of I3A under the paper's split: 2176 (Table 2's I3A row, D10)."""
    return sum(split_counts(n)[1] for n in paper.I3A_COUNTS)


def split_records(records, *, seed: int = ledger.RANDOM_SEED, protocol: str = "cell",
                  folds: int | None = None, fold: int = 1) -> dict[str, list]:
    """Cell records -> {"train", "val", "test"} lists, sorted by ID.

    protocol "cell" (the paper's, section 3.2): stratified per class, a seeded shuffle of each
    class cut at `split_counts`, which reproduces Table 2's training row exactly.
    protocol "specimen": whole specimens go to one split (ASSUMPTIONS.md D9), per class,
    aiming at the same 64/16/20 counts; records need specimen IDs.
    protocol "kfold" / "loso": fold `fold` (1-based) of `fold_assignment` is the test part;
    `folds` as there.
    Records that already carry a split (pre-split layout) keep it, except under kfold and loso,
    which make their own.
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown split protocol {protocol!r} ({', '.join(PROTOCOLS)})")
    if protocol in FOLD_PROTOCOLS:
        return fold_split(records, protocol, folds, fold, seed)
    if all(r.split for r in records):
        return {s: sorted((r for r in records if r.split == s), key=lambda r: r.id)
                for s in SPLITS}
    if protocol == "specimen":
        require_specimens(records, protocol)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for label in sorted({r.label for r in records}):
        of_class = sorted((r for r in records if r.label == label), key=lambda r: r.id)
        rng = np.random.default_rng([seed, label])
        parts = (_by_cell if protocol == "cell" else _by_specimen)(of_class, rng)
        for name, part in zip(SPLITS, parts):
            out[name].extend(part)
    return {s: sorted(v, key=lambda r: r.id) for s, v in out.items()}


def require_specimens(records, protocol: str) -> None:
    missing = [r.id for r in records if not r.specimen]
    if missing:
        raise UserError(f"--protocol {protocol} needs a specimen ID for every cell; "
                        f"{len(missing)} have none (first: image {missing[0]}). The label "
                        "CSV needs a specimen column (docs/data.md)")


def _by_cell(cells, rng):
    train, val, _ = split_counts(len(cells))
    shuffled = [cells[i] for i in rng.permutation(len(cells))]
    return shuffled[:train], shuffled[train:train + val], shuffled[train + val:]


def _by_specimen(cells, rng, targets=None):
    """Specimens of one class, in seeded order, each to the split furthest below its target
    (`targets`: cells per part; default the 64/16/20 split's three)."""
    targets = targets or split_counts(len(cells))
    groups: dict[str, list] = {}
    for r in cells:
        groups.setdefault(r.specimen, []).append(r)
    names = sorted(groups)
    parts = tuple([] for _ in targets)
    # Largest specimens first so the small ones can even out the counts; ties in seeded order.
    order = sorted(rng.permutation(len(names)), key=lambda i: -len(groups[names[i]]))
    for i in order:
        # Empty splits first (each split gets a specimen when there are three or more), then
        # the largest shortfall relative to its target.
        k = max(range(len(parts)), key=lambda j: (not parts[j], (targets[j] - len(parts[j]))
                                                  / max(targets[j], 1)))
        parts[k].extend(groups[names[i]])
    return parts



# --- cross-validation -----------------------------------------------------------------------
def _val_fraction() -> float:
    """The validation share of a fold's training part: the paper's 16 / (64 + 16) = 0.2."""
    f_train, f_val, _ = paper.SPLIT_FRACTIONS
    return f_val / (f_train + f_val)


def fold_count(records, protocol: str, folds: int | None = None) -> int:
    """How many folds `fold_assignment` makes (K, or the specimens under leave-one-out)."""
    if protocol == "kfold":
        k = folds or ledger.CV_FOLDS
    elif protocol == "loso":
        require_specimens(records, protocol)
        specimens = len({r.specimen for r in records})
        if folds:
            k = min(folds, specimens)
        else:
            k = specimens if specimens <= ledger.LOSO_MAX_FOLDS else ledger.CV_FOLDS
    else:
        raise UserError(f"protocol {protocol!r} has no folds (kfold or loso)")
    if k < 2:
        raise UserError(f"{protocol} needs two or more folds (K={k}"
                        + (f", {k} specimen(s)" if protocol == "loso" else "") + ")")
    if k > len(records):
        raise UserError(f"K={k} folds but only {len(records)} cells")
    return k


def fold_assignment(records, protocol: str, folds: int | None = None,
                    seed: int = ledger.RANDOM_SEED) -> dict[str, int]:
    """Cell ID -> fold (0-based) of every record.

    kfold: per class a seeded shuffle dealt round-robin, the dealing going on from class to
    class, so each fold holds each class's cells to within one and the folds' sizes differ by
    at most one. loso with one fold per specimen: the specimens in sorted order. loso with fewer
    folds than specimens: whole specimens, per class (a specimen counts for the class of most
    of its cells) largest first, each to the fold with the fewest cells of that class, then the
    fewest cells, then the lowest number (ledger C7).
    """
    k = fold_count(records, protocol, folds)
    records = sorted(records, key=lambda r: r.id)
    out: dict[str, int] = {}
    if protocol == "kfold":
        dealt = 0
        for label in sorted({r.label for r in records}):
            of_class = [r for r in records if r.label == label]
            rng = np.random.default_rng([seed, label, 0xF01D])
            for i in rng.permutation(len(of_class)):
                out[of_class[i].id] = dealt % k
                dealt += 1
        return out
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(r.specimen, []).append(r)
    names = sorted(groups)
    if k == len(names):
        return {r.id: names.index(r.specimen) for r in records}
    majority = {name: max(set(r.label for r in cells),
                          key=lambda c: (sum(r.label == c for r in cells), -c))
                for name, cells in groups.items()}
    per_class = np.zeros((k, max(r.label for r in records) + 1), np.int64)
    totals = np.zeros(k, np.int64)
    for label in sorted(set(majority.values())):
        of_class = [n for n in names if majority[n] == label]
        rng = np.random.default_rng([seed, label, 0xF01D])
        order = sorted(rng.permutation(len(of_class)), key=lambda i: -len(groups[of_class[i]]))
        for i in order:
            name = of_class[i]
            target = min(range(k), key=lambda f: (per_class[f, label], totals[f], f))
            for r in groups[name]:
                out[r.id] = target
                per_class[target, r.label] += 1
            totals[target] += len(groups[name])
    return out


def fold_split(records, protocol: str, folds: int | None, fold: int,
               seed: int = ledger.RANDOM_SEED) -> dict[str, list]:
    """Fold `fold` (1-based) as train / val / test: the fold is the test part; the validation
    part comes from the other folds (ledger C8): kfold stratified per class (a seeded shuffle,
    round(0.2 n) of each class), loso whole specimens per class aiming at the same share."""
    k = fold_count(records, protocol, folds)
    if not 1 <= fold <= k:
        raise UserError(f"fold {fold} does not exist: {protocol} makes folds 1-{k}")
    assigned = fold_assignment(records, protocol, folds, seed)
    test = [r for r in records if assigned[r.id] == fold - 1]
    rest = [r for r in records if assigned[r.id] != fold - 1]
    train, val = [], []
    for label in sorted({r.label for r in rest}):
        of_class = sorted((r for r in rest if r.label == label), key=lambda r: r.id)
        rng = np.random.default_rng([seed, label, fold])
        n_val = round(_val_fraction() * len(of_class))
        if protocol == "kfold":
            shuffled = [of_class[i] for i in rng.permutation(len(of_class))]
            part_val, part_train = shuffled[:n_val], shuffled[n_val:]
        else:
            part_train, part_val = _by_specimen(of_class, rng,
                                                (len(of_class) - n_val, n_val))
        train += part_train
        val += part_val
    # A specimen whose cells span classes must not straddle train and val (loso): the whole
    # specimen goes where most of its cells went.
    if protocol == "loso":
        train, val = _whole_specimens(train, val)
    return {name: sorted(part, key=lambda r: r.id)
            for name, part in zip(SPLITS, (train, val, test))}


def _whole_specimens(train: list, val: list) -> tuple[list, list]:
    in_val: dict[str, list[int]] = {}
    for r in train:
        in_val.setdefault(r.specimen, [0, 0])[0] += 1
    for r in val:
        in_val.setdefault(r.specimen, [0, 0])[1] += 1
    to_val = {s for s, (t, v) in in_val.items() if v > t}
    both = train + val
    return ([r for r in both if r.specimen not in to_val],
            [r for r in both if r.specimen in to_val])
