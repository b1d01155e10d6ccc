"""Python 3 parser of the glog output of `caffe train`, keeping every output by its name.

Caffe's own `tools/extra/parse_log.py` is Python 2 and assumes a single accuracy; the DRI net
reports three losses and four accuracies. The lines read here are those of BVLC Caffe's
solver.cpp / sgd_solver.cpp:

    Iteration 100 (2.1 iter/s, 47.6s/100 iters), loss = 1.23
        Train net output #0: loss1/loss = 1.6 (* 0.3 = 0.48 loss)
    Iteration 100, lr = 0.001
    Iteration 100, Testing net (#0)
        Test net output #1: loss1/top-1 = 0.61

A rerun appends to the same log and repeats iterations: those after its snapshot when it
resumes, all of them when it starts over without one; the repeated ones replace the first
ones, so the parse is of the run as kept.
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf))"
TRAIN_LINE = re.compile(
    r"\] Iteration (\d+) \(([\d.e+-]+|inf) iter/s, ([\d.e+-]+)s/(\d+) iters?\), loss = " + _NUM)
FINAL_LOSS = re.compile(r"\] Iteration (\d+), loss = " + _NUM)
LR_LINE = re.compile(r"\] Iteration (\d+), lr = " + _NUM)
TESTING = re.compile(r"\] Iteration (\d+), Testing net \(#(\d+)\)")
OUTPUT = re.compile(r"\] +(Train|Test) net output #\d+: (\S+) = " + _NUM)
RESUMING = re.compile(r"\] Resuming from (\S+)")
SOLVING = re.compile(r"\] Solving ")

ITERATION = "iteration"
LR = "lr"
LOSS = "loss"
SEC_PER_ITER = "seconds_per_iter"


@dataclass
class TrainingLog:
    """Rows keyed by iteration: {column: value}; columns `train/<name>`, `test/<name>`."""
    rows: dict[int, dict[str, float]] = field(default_factory=dict)
    resumed_at: list[int] = field(default_factory=list)

    def columns(self) -> list[str]:
        fixed = [LR, LOSS, SEC_PER_ITER]
        seen = {c for row in self.rows.values() for c in row}
        named = sorted(c for c in seen if c not in fixed)
        return [ITERATION] + [c for c in fixed if c in seen] + named

    def series(self, column: str) -> tuple[list[int], list[float]]:
        """(iterations, values) where `column` was logged, in iteration order."""
        its = [i for i in sorted(self.rows) if column in self.rows[i]]
        return its, [self.rows[i][column] for i in its]

    def names(self, phase: str) -> list[str]:
        """Output names seen for phase `train` or `test`, e.g. `loss1/loss`, `fused/top-1`."""
        prefix = phase + "/"
        return [c[len(prefix):] for c in self.columns() if c.startswith(prefix)]

    def last_iteration(self) -> int | None:
        return max(self.rows) if self.rows else None

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        columns = self.columns()
        writer.writerow(columns)
        for it in sorted(self.rows):
            row = self.rows[it]
            writer.writerow([it] + [_fmt(row.get(c)) for c in columns[1:]])
        return out.getvalue()


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return repr(value) if math.isfinite(value) else str(value)


def parse_lines(lines: Iterable[str]) -> TrainingLog:
    log = TrainingLog()
    # Outputs belong to the latest "Iteration N" header of their kind: the train outputs follow
    # the loss line, the test outputs the "Testing net" line.
    train_iter: int | None = None
    test_iter: int | None = None
    # Each `caffe train` session starts with "Solving <net>" (after "Resuming from <state>"
    # when it resumes). Its first row replaces whatever earlier sessions logged from that
    # iteration on: a resumed session recomputes the iterations after its snapshot, and a
    # session restarted without a snapshot recomputes them all.
    new_session = False
    resumed = False
    # The first speed of a session spans the start-up and the first validation: not a rate.
    first_display = True

    def row(it: int) -> dict[str, float]:
        nonlocal new_session, resumed
        if new_session:
            for later in [i for i in log.rows if i >= it]:
                del log.rows[later]
            if resumed:
                log.resumed_at.append(it)
            new_session = resumed = False
        return log.rows.setdefault(it, {})

    for line in lines:
        if m := OUTPUT.search(line):
            phase, name, value = m.groups()
            it = train_iter if phase == "Train" else test_iter
            if it is not None:
                row(it)[f"{phase.lower()}/{name}"] = float(value)
        elif m := TRAIN_LINE.search(line):
            train_iter = int(m.group(1))
            r = row(train_iter)
            r[LOSS] = float(m.group(5))
            if not first_display:
                r[SEC_PER_ITER] = float(m.group(3)) / int(m.group(4))
            first_display = False
        elif m := LR_LINE.search(line):
            row(int(m.group(1)))[LR] = float(m.group(2))
        elif m := TESTING.search(line):
            test_iter = int(m.group(1))
        elif m := FINAL_LOSS.search(line):
            train_iter = None  # the closing "Iteration N, loss = " line has no outputs after it
            row(int(m.group(1)))[LOSS] = float(m.group(2))
        elif SOLVING.search(line):
            first_display = new_session = True
            train_iter = test_iter = None
        elif RESUMING.search(line):
            resumed = True
            train_iter = test_iter = None
    return log


def parse_file(path: str | Path) -> TrainingLog:
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_lines(f)


def write_csv(log: TrainingLog, path: str | Path) -> Path:
    return atomic.write_text(path, log.to_csv())
