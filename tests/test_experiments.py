"""Seed series and determinism through real `caffe train` (a four-iteration schedule on tiny
LMDBs keeps each run to seconds): same seed, same weights; another seed, other weights; the
series summary and the pages that show it."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dri_hep2.experiment import execute, experiments, series, train
from dri_hep2 import ledger, schedules
from dri_hep2.net import proto

TINY = schedules.Schedule(base_lr=0.01, stepsize=2, max_iter=4, test_interval=2, snapshot=4,
                          display=1, bn_moving_average=0.8)


@pytest.fixture
def tiny_schedule(monkeypatch):
    monkeypatch.setitem(schedules.SCHEDULES, "tiny", TINY)
    return "tiny"


def weights(run_dir) -> dict[str, list[np.ndarray]]:
    run = train.RunDir(run_dir)
    net = proto.caffe.Net(str(run.deploy), proto.caffe.TEST,
                          weights=str(run.newest("caffemodel")))
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


@pytest.mark.slow
def test_same_seed_gives_bit_identical_weights_another_seed_does_not(
        caffe, tiny_data_dir, tmp_path, tiny_schedule):
    """Determinism stated, not assumed (CPU, one machine): two trainings with one seed end in
    identical weights, bit for bit; the next seed ends elsewhere."""
    base = train.RunConfig(net="sri", schedule=tiny_schedule, data_dir=tiny_data_dir,
                           run_dir=tmp_path / "a")
    runs = {"a": base, "b": dataclasses.replace(base, run_dir=tmp_path / "b"),
            "c": dataclasses.replace(base, run_dir=tmp_path / "c", seed=base.seed + 1)}
    for cfg in runs.values():
        assert train.train(cfg, progress=False).outcome == "finished"
    a, b, c = (weights(cfg.run_dir) for cfg in runs.values())
    assert all(np.array_equal(x, y) for name in a for x, y in zip(a[name], b[name]))
    assert not all(np.array_equal(x, y) for name in a for x, y in zip(a[name], c[name]))


@pytest.mark.slow
def test_a_seed_series_is_trained_evaluated_and_summarised(caffe, tiny_data_dir, tmp_path,
                                                           tiny_schedule, capsys):
    base = train.RunConfig(net="sri", schedule=tiny_schedule, data_dir=tiny_data_dir,
                           run_dir=tmp_path / "sri")
    # The base run, as `make train` + `make eval` + `make report` would leave it.
    first = experiments.series_grid(base, 1).cells(lambda *cell: base.run_dir)[0]
    assert execute.run_cell(first, progress=False) == execute.FINISHED
    got = experiments.run_series(base, 2, progress=False)
    assert got.path == tmp_path / "sri-seeds"
    # seed-1 is the base configuration, finished: copied, not trained again.
    assert "seed-1 is" in capsys.readouterr().out
    assert (got.run(1).log.read_text() == base.run.log.read_text())
    assert [train.RunDir(r).read_manifest()["seed"] for _, r in got.runs()] == \
        [ledger.RANDOM_SEED, ledger.RANDOM_SEED + 1]
    summary = json.loads(got.summary.read_text())
    mcas = [json.loads(got.run(k).eval_json.read_text())["combos"]["1+2+3"]["mca"]
            for k in (1, 2)]
    s = summary["spread"]["prob"]["1+2+3"]["mca"]
    assert (s["n"], s["min"], s["max"]) == (2, min(mcas), max(mcas))
    assert s["mean"] == pytest.approx(np.mean(mcas))
    assert s["sd"] == pytest.approx(np.std(mcas, ddof=1))
    page = got.page.read_text()
    assert "| DRI<sub>1+2+3</sub> | " in page and " ± " in page and "(seed-2/README.md)" in page
    # The base run's results page shows the series, without a `make report`.
    base_page = base.run.page.read_text()
    assert "## Seeds" in base_page and "sri-seeds/README.md" in base_page
    # Rerunning the finished series trains nothing and keeps the summary.
    log2 = got.run(2).log.read_text()
    assert experiments.run_series(base, 2, progress=False) is not None
    assert got.run(2).log.read_text() == log2


def test_a_series_needs_a_run():
    with pytest.raises(train.UserError, match="at least one run"):
        experiments.run_series(train.RunConfig(), 0)
    with pytest.raises(train.UserError, match="no evaluated run"):
        series.summarize(series.SeriesDir("/nonexistent-seeds"))
