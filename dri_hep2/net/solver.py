"""The paper's solver (section 2.3) and the short CPU schedule, as Caffe SolverParameters."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .. import paper
from .blocks import _caffe as caffe
from .build import check_variant


@dataclass(frozen=True)
class Schedule:
    base_lr: float
    stepsize: int
    max_iter: int
    test_interval: int
    snapshot: int
    display: int


SCHEDULES = {
    # Section 2.3: base_lr 0.001, gamma 0.79, 290,000 iterations; stepsize is ours (N7).
    "paper": Schedule(paper.BASE_LR, paper.LR_STEPSIZE, paper.MAX_ITER, paper.TEST_INTERVAL,
                      paper.SNAPSHOT_INTERVAL, paper.DISPLAY_INTERVAL),
    # A CPU demo: same policy, momentum, gamma and decay; fewer iterations (ASSUMPTIONS.md T1).
    "short": Schedule(paper.SHORT_BASE_LR, paper.SHORT_STEPSIZE, paper.SHORT_MAX_ITER,
                      paper.SHORT_TEST_INTERVAL, paper.SHORT_SNAPSHOT_INTERVAL,
                      paper.SHORT_DISPLAY_INTERVAL),
}


def test_iter(val_size: int, test_batch_size: int = paper.TEST_BATCH_SIZE) -> int:
    """Validation batches that cover the whole validation split once (rounding up)."""
    if val_size <= 0:
        raise ValueError(f"validation size must be positive, got {val_size}")
    return math.ceil(val_size / test_batch_size)


def i3a_val_size() -> int:
    """Validation cells of I3A under the paper's split: 2176."""
    from ..data.split import split_counts
    return sum(split_counts(n)[1] for n in paper.I3A_COUNTS)


def solver(variant: str, schedule: str, net_path: str, snapshot_prefix: str, val_size: int,
           test_batch_size: int = paper.TEST_BATCH_SIZE):
    """SGD with momentum 0.9 and the step policy, gamma 0.79 (section 2.3); weight decay
    paper.WEIGHT_DECAY (N8); a fixed random_seed. solver_mode is left unset (CPU) so that
    `caffe train -gpu N` alone picks the device."""
    check_variant(variant)
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    s = SCHEDULES[schedule]
    sp = caffe.proto.caffe_pb2.SolverParameter()
    sp.net = str(net_path)
    sp.test_iter.append(test_iter(val_size, test_batch_size))
    sp.test_interval = s.test_interval
    sp.type = "SGD"
    sp.base_lr = s.base_lr
    sp.momentum = paper.MOMENTUM
    sp.weight_decay = paper.WEIGHT_DECAY
    sp.lr_policy = "step"
    sp.gamma = paper.LR_GAMMA
    sp.stepsize = s.stepsize
    sp.max_iter = s.max_iter
    sp.display = s.display
    sp.snapshot = s.snapshot
    sp.snapshot_prefix = str(snapshot_prefix)
    sp.random_seed = paper.RANDOM_SEED
    return sp
