"""The training schedules a run can name (make's SCHEDULE=): the one list of them.

`paper` is section 2.3 with the stepsize, validation and snapshots it leaves open (ledger N7,
N14); `short` is our CPU schedule for the demo (ledger T1, T7).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import errors, ledger, paper


@dataclass(frozen=True)
class Schedule:
    base_lr: float
    stepsize: int
    max_iter: int
    test_interval: int
    snapshot: int
    display: int
    # BatchNorm's moving_average_fraction in the run's nets; None keeps Caffe's 0.999.
    bn_moving_average: float | None = None


SCHEDULES = {
    # Section 2.3: base_lr 0.001, gamma 0.79, 290,000 iterations; stepsize is ours (N7).
    "paper": Schedule(paper.BASE_LR, ledger.LR_STEPSIZE, paper.MAX_ITER, ledger.TEST_INTERVAL,
                      ledger.SNAPSHOT_INTERVAL, ledger.DISPLAY_INTERVAL),
    # A CPU demo: same policy, momentum, gamma and decay; fewer iterations (T1), a short
    # BatchNorm averaging window (T7).
    "short": Schedule(ledger.SHORT_BASE_LR, ledger.SHORT_STEPSIZE, ledger.SHORT_MAX_ITER,
                      ledger.SHORT_TEST_INTERVAL, ledger.SHORT_SNAPSHOT_INTERVAL,
                      ledger.SHORT_DISPLAY_INTERVAL, ledger.SHORT_BN_MOVING_AVERAGE),
}


def get(name: str) -> Schedule:
    if name not in SCHEDULES:
        raise errors.UserError(f"unknown schedule {name!r}; choose one of "
                               f"{', '.join(SCHEDULES)}")
    return SCHEDULES[name]
