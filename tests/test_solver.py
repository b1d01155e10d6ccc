"""The solver of section 2.3, and that Caffe accepts it and trains with it."""
from __future__ import annotations

import numpy as np
import pytest

from dri_hep2 import ledger, paper
from dri_hep2.folders import REPO_ROOT
from dri_hep2.data import split
from dri_hep2.errors import UserError
from dri_hep2.net import build, proto, solver


def _committed(caffe, variant, name):
    return proto.read(REPO_ROOT / "solver" / f"{variant}_{name}.prototxt",
                      proto.caffe_pb2.SolverParameter)


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_committed_solver_has_the_papers_fields(caffe, variant):
    """Section 2.3: SGD, momentum 0.9, base_lr 0.001, step policy with gamma 0.79,
    290,000 iterations; a fixed seed; validation over I3A's 2176 cells."""
    s = _committed(caffe, variant, "solver")
    assert s.type == "SGD"
    assert s.momentum == pytest.approx(paper.MOMENTUM)
    assert s.base_lr == pytest.approx(paper.BASE_LR)
    assert s.lr_policy == "step"
    assert s.gamma == pytest.approx(paper.LR_GAMMA)
    assert s.max_iter == paper.MAX_ITER
    assert s.stepsize == ledger.LR_STEPSIZE
    assert s.weight_decay == pytest.approx(ledger.WEIGHT_DECAY)
    assert s.random_seed == ledger.RANDOM_SEED
    assert s.net == f"prototxt/{variant}_train_val.prototxt"
    assert s.snapshot_prefix == f"results/{variant}/snapshots/{variant}"
    assert list(s.test_iter) == [68]
    assert s.test_iter[0] * ledger.TEST_BATCH_SIZE >= 2176
    assert not s.HasField("solver_mode")


def test_short_schedule_keeps_the_policy_and_shortens_the_run(caffe):
    s = _committed(caffe, "dri", "short_solver")
    assert (s.max_iter, s.stepsize, s.base_lr) == (
        ledger.SHORT_MAX_ITER, ledger.SHORT_STEPSIZE, pytest.approx(ledger.SHORT_BASE_LR))
    assert (s.lr_policy, s.gamma, s.momentum) == (
        "step", pytest.approx(paper.LR_GAMMA), pytest.approx(paper.MOMENTUM))
    # What SCHEDULE=short runs: its own train_val with the short BatchNorm window (T7), and
    # snapshots apart from the paper schedule's, so neither resumes from the other.
    assert s.net == "prototxt/dri_short_train_val.prototxt"
    assert s.snapshot_prefix == "results/dri-short/snapshots/dri"
    short_net = proto.read(REPO_ROOT / s.net)
    fractions = [layer.batch_norm_param.moving_average_fraction for layer in short_net.layer
                 if layer.type == "BatchNorm"]
    assert len(fractions) > 30
    assert fractions == pytest.approx([ledger.SHORT_BN_MOVING_AVERAGE] * len(fractions))


def test_i3a_validation_size_and_test_iter():
    """Section 3.2: 16% of each I3A class; 2176 cells in batches of 32."""
    assert split.i3a_val_size() == 2176
    assert solver.test_iter(2176) == 68
    assert solver.test_iter(12, 5) == 3
    with pytest.raises(UserError):
        solver.test_iter(0)
    with pytest.raises(UserError, match="unknown schedule"):
        solver.solver("dri", "long", "n", "p", 10)


def test_caffe_trains_with_the_solver(caffe, tmp_path, tiny_data_dir):
    """The SolverParameter loads in Caffe's SGD solver, which then moves the weights."""
    net_path = tmp_path / "train_val.prototxt"
    net_path.write_text(proto.to_text(build.train_val("sri", data_dir=str(tiny_data_dir),
                                                      batch_size=2, test_batch_size=2)))
    sp = solver.solver("sri", "paper", str(net_path), str(tmp_path / "snap"), val_size=12,
                       test_batch_size=2)
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(proto.to_text(sp))
    sgd = caffe.get_solver(str(solver_path))
    before = sgd.net.params["conv1/7x7_s2"][0].data.copy()
    sgd.step(1)
    assert sgd.iter == 1
    assert not np.array_equal(before, sgd.net.params["conv1/7x7_s2"][0].data)
    assert sgd.test_nets[0].blobs["data"].data.shape[0] == 2
