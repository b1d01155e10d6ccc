"""The solvers of the schedules (dri_hep2.schedules) as Caffe SolverParameters: section 2.3's
SGD for `paper`, the same policy shortened for `short`."""
from __future__ import annotations

import math

from .. import errors, ledger, paper, schedules
from .build import variant_of
from .proto import caffe_pb2


def test_iter(val_size: int, test_batch_size: int = ledger.TEST_BATCH_SIZE) -> int:
    """Validation batches that cover the whole validation split once (rounding up)."""
    if val_size <= 0:
        raise errors.UserError(f"validation split is empty ({val_size} cells): a run needs "
                               "validation cells to report on")
    return math.ceil(val_size / test_batch_size)


def solver(variant: str, schedule: str, net_path: str, snapshot_prefix: str, val_size: int,
           test_batch_size: int = ledger.TEST_BATCH_SIZE, random_seed: int = ledger.RANDOM_SEED):
    """SGD with momentum 0.9 and the step policy, gamma 0.79 (section 2.3); weight decay
    ledger.WEIGHT_DECAY (N8); a fixed random_seed (N14; `make seeds` varies it). solver_mode
    is left unset (CPU) so that `caffe train -gpu N` alone picks the device."""
    variant_of(variant)
    s = schedules.get(schedule)
    sp = caffe_pb2.SolverParameter()
    sp.net = str(net_path)
    sp.test_iter.append(test_iter(val_size, test_batch_size))
    sp.test_interval = s.test_interval
    sp.type = "SGD"
    sp.base_lr = s.base_lr
    sp.momentum = paper.MOMENTUM
    sp.weight_decay = ledger.WEIGHT_DECAY
    sp.lr_policy = "step"
    sp.gamma = paper.LR_GAMMA
    sp.stepsize = s.stepsize
    sp.max_iter = s.max_iter
    sp.display = s.display
    sp.snapshot = s.snapshot
    sp.snapshot_prefix = str(snapshot_prefix)
    sp.random_seed = random_seed
    return sp
