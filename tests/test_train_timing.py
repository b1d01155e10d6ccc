"""The train-vs-time comparison of `make bench-engine` (issue 20, dri_hep2.net.train_timing):
`caffe train` and `caffe time` of one net with a Data layer over random cells, real Caffe."""
from __future__ import annotations

import pytest

from dri_hep2.engine import caffe_env
from dri_hep2.net import profile, train_timing


def test_a_train_log_gives_one_figure_per_iteration_after_the_warm_up():
    log = "\n".join(f"I1207 04:00:0{i}.000 1 solver.cpp:218] Iteration {i} "
                    f"({1 / (0.5 + i):.3f} iter/s, {0.5 + i}s/1 iters), loss = 1.7"
                    for i in range(5))
    assert train_timing.parse_train_log(log, warmup=2).seconds == [2.5, 3.5, 4.5]
    with pytest.raises(ValueError, match="fewer than the 5 of warm-up"):
        train_timing.parse_train_log(log, warmup=5)


def test_caffe_train_and_caffe_time_run_the_same_lmdb_net(tmp_path):
    source = train_timing.random_lmdb(tmp_path / "cells", 8)
    net = train_timing.lmdb_net("dri", source, batch_size=2)
    assert [layer.type for layer in net.layer].count("Data") == 1
    assert "Input" not in [layer.type for layer in net.layer]
    caffe_bin = caffe_env.caffe_binary()
    trained = train_timing.caffe_train(caffe_bin, net, iterations=3, warmup=1)
    assert len(trained.seconds) == 3 and min(trained.seconds) > 0
    timed = profile.caffe_time(caffe_bin, net, iterations=2)
    assert len(timed.iterations_ms) == 2
    pair = train_timing.Pair(0.0, timed.iterations_ms, [s * 1000 for s in trained.seconds])
    row = train_timing.table({"this": [pair]}).splitlines()[-1]
    ratio = trained.median_ms / (sum(sorted(timed.iterations_ms)) / 2)
    assert f"**{ratio:.2f}**" in row
