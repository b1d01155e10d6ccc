"""One call per specimen from its cells' calls (`make predict`, ASSUMPTIONS.md U2, U3): the
rules, the call and, with ground truth, the specimen's true class."""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..errors import UserError

SPECIMEN_RULES = ("mean", "vote")


def check_rule(rule: str) -> str:
    if rule not in SPECIMEN_RULES:
        raise UserError(f"specimen rule {rule!r}: one of {', '.join(SPECIMEN_RULES)}")
    return rule


def specimen_calls(specimens: list[str | None], fused: np.ndarray, rule: str
                   ) -> dict[str, dict]:
    """One call per specimen from its cells' fused probabilities (N x K, rows sum to 1).

    `mean` (ASSUMPTIONS.md U2): arg-max of the mean of the cells' fused probabilities.
    `vote`: the class most cells are called, ties to the higher mean probability.
    `votes` is the share of the specimen's cells whose own call equals the specimen's.
    """
    check_rule(rule)
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(specimens):
        if s is not None:
            groups.setdefault(s, []).append(k)
    out = {}
    for s, rows in groups.items():
        probs = fused[rows]
        mean = probs.mean(axis=0)
        calls = probs.argmax(axis=1)
        counts = np.bincount(calls, minlength=fused.shape[1])
        if rule == "mean":
            call = int(mean.argmax())
        else:
            best = np.flatnonzero(counts == counts.max())
            call = int(best[np.argmax(mean[best])])
        out[s] = {"rows": rows, "call": call, "mean": mean,
                  "votes": float(counts[call] / len(rows))}
    return out


def specimen_truth(specimens: dict[str, dict], labels: np.ndarray) -> tuple[np.ndarray, int]:
    """A specimen's true class: its cells' most common label (U3); how many were mixed."""
    truth, mixed = [], 0
    for s in specimens.values():
        counts = Counter(labels[s["rows"]].tolist())
        mixed += len(counts) > 1
        truth.append(max(sorted(counts), key=counts.__getitem__))
    return np.array(truth), mixed
