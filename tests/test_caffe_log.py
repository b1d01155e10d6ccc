"""The Python 3 parser of `caffe train` logs: every output by name, lr, resumes."""
from __future__ import annotations

import csv
import io

from dri_hep2.engine import caffe_log

P = "I1125 10:00:00.000000  1 solver.cpp:239]"
LOG = f"""\
{P} Solving dri
{P} Iteration 0, Testing net (#0)
{P}     Test net output #0: fused/top-1 = 0.2
{P}     Test net output #1: loss1/loss = 1.8 (* 0.3 = 0.54 loss)
{P}     Test net output #2: loss1/top-1 = 0.17
{P} Iteration 0 (-1e-13 iter/s, 30.5s/20 iters), loss = 2.9
{P}     Train net output #0: loss1/loss = 1.79 (* 0.3 = 0.537 loss)
{P}     Train net output #1: loss2/loss = 1.8 (* 0.3 = 0.54 loss)
{P}     Train net output #2: loss3/loss = 1.82 (* 1 = 1.82 loss)
{P} Iteration 0, lr = 0.01
{P} Iteration 20 (2 iter/s, 10s/20 iters), loss = 2.5
{P}     Train net output #0: loss1/loss = 1.5 (* 0.3 = 0.45 loss)
{P}     Train net output #1: loss2/loss = 1.6 (* 0.3 = 0.48 loss)
{P}     Train net output #2: loss3/loss = 1.57 (* 1 = 1.57 loss)
{P} Iteration 20, lr = 0.01
{P} Iteration 40 (2 iter/s, 10s/20 iters), loss = 9.9
{P}     Train net output #2: loss3/loss = 9.9 (* 1 = 9.9 loss)
{P} Snapshotting to binary proto file snapshots/dri_iter_47.caffemodel
{P} Iteration 47, loss = 9.8
# 2026-11-25T10:10:00+00:00 caffe train -solver=solver.prototxt -snapshot=...
{P} Resuming from snapshots/dri_iter_20.solverstate
{P} Solving dri
{P} Iteration 40 (-5e+14 iter/s, 99s/20 iters), loss = 2.1
{P}     Train net output #2: loss3/loss = 1.2 (* 1 = 1.2 loss)
{P} Iteration 40, lr = 0.005
{P} Iteration 40, Testing net (#0)
{P}     Test net output #0: fused/top-1 = 0.75
{P}     Test net output #1: loss1/loss = 0.9 (* 0.3 = 0.27 loss)
{P}     Test net output #2: loss1/top-1 = 0.7
{P} Iteration 60, loss = 1.9
{P} Optimization Done.
"""


def test_every_output_is_kept_by_name():
    log = caffe_log.parse_lines(LOG.splitlines())
    assert log.names("train") == ["loss1/loss", "loss2/loss", "loss3/loss"]
    assert log.names("test") == ["fused/top-1", "loss1/loss", "loss1/top-1"]
    # The raw output value, not the weighted one in parentheses.
    assert log.rows[0]["train/loss1/loss"] == 1.79
    assert log.rows[0]["test/loss1/loss"] == 1.8
    assert log.series("lr") == ([0, 20, 40], [0.01, 0.01, 0.005])
    assert log.series("test/fused/top-1") == ([0, 40], [0.2, 0.75])
    assert log.series("loss") == ([0, 20, 40, 60], [2.9, 2.5, 2.1, 1.9])


def test_resume_replaces_the_iterations_after_the_snapshot():
    log = caffe_log.parse_lines(LOG.splitlines())
    assert log.resumed_at == [40]
    assert 47 not in log.rows                       # the interrupted session's last line
    assert log.rows[40]["train/loss3/loss"] == 1.2  # not 9.9
    assert log.last_iteration() == 60


def test_speed_skips_the_first_display_of_each_session():
    log = caffe_log.parse_lines(LOG.splitlines())
    assert log.series("seconds_per_iter") == ([20], [0.5])


def test_csv_has_one_row_per_iteration_and_every_column():
    text = caffe_log.parse_lines(LOG.splitlines()).to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["iteration"] for r in rows] == ["0", "20", "40", "60"]
    assert list(rows[0])[:4] == ["iteration", "lr", "loss", "seconds_per_iter"]
    assert rows[2]["test/fused/top-1"] == "0.75" and rows[1]["test/fused/top-1"] == ""
    assert rows[0]["train/loss2/loss"] == "1.8"


def test_a_session_restarted_without_a_snapshot_replaces_the_dead_one():
    """Session 1 logs 0/20/40 and dies without a snapshot; session 2 starts over at 0 and logs
    0/20: the run as kept is session 2's, so the dead session's 40 must not survive."""
    def session(losses):
        lines = [f"{P} Solving dri"]
        for it, loss in losses:
            lines += [f"{P} Iteration {it} (2 iter/s, 10s/20 iters), loss = {loss}",
                      f"{P}     Train net output #0: loss3/loss = {loss} (* 1 = {loss} loss)",
                      f"{P} Iteration {it}, lr = 0.01"]
        return lines
    log = caffe_log.parse_lines(session([(0, 3.0), (20, 2.0), (40, 1.0)])
                                + ["# 2026-11-27T10:00:00+00:00 caffe train -solver=..."]
                                + session([(0, 2.9), (20, 1.9)]))
    assert sorted(log.rows) == [0, 20]
    assert log.series("loss") == ([0, 20], [2.9, 1.9])
    assert log.resumed_at == []          # a restart, not a resume
