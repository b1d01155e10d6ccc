"""Other data sets and cross-validation through real Caffe (issue 11, "Done when"): each layout's
replica goes through make data, a short make train and make eval with its own class list; make
cv trains and evaluates every fold, resumes, refuses a changed series and writes its summary
page. A four-iteration schedule keeps each training to seconds (test_experiments.py's)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dri_hep2 import classes, cli, schedules
from dri_hep2.experiment import cv, execute
from dri_hep2.data import formats, replicas, synthetic
from dri_hep2.net import proto
from dri_hep2.experiment.run import RunDir

TOOLS = Path(__file__).resolve().parent.parent / "tools"
TINY = schedules.Schedule(base_lr=0.01, stepsize=2, max_iter=4, test_interval=2, snapshot=4,
                          display=1, bn_moving_average=0.8)


def tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def tiny_schedule(monkeypatch):
    monkeypatch.setitem(schedules.SCHEDULES, "tiny", TINY)
    return "tiny"


REPLICAS = {
    "icpr2012": (lambda out: replicas.make_icpr2012(out, scale=0.02), classes.ICPR2012),
    "i3a-task2": (lambda out: replicas.make_task2(out, specimens_per_class=1,
                                                  images_per_specimen=2, grid=(2, 2)),
                  classes.I3A_TASK2),
    "folders": (lambda out: replicas.make_folders(out, per_class=12, specimens_per_class=3),
                classes.custom(sorted(replicas.FOLDER_CLASSES))),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REPLICAS))
def test_each_layout_goes_through_data_train_and_eval(caffe, tmp_path, tiny_schedule, name,
                                                      capsys):
    make, expected = REPLICAS[name]
    source = make(tmp_path / "source")
    data, run = tmp_path / "data", tmp_path / "run"
    assert cli.run(tool("make_data"), ["--i3a", str(source), "--data-dir", str(data),
                                       "--quiet", "--workers", "2"]) == 0
    assert f"reading {source} as {formats.FORMATS[name]}" in capsys.readouterr().out
    assert cli.run(tool("train"), ["--net", "sri", "--schedule", tiny_schedule, "--data-dir",
                                   str(data), "--run-dir", str(run), "--no-progress"]) == 0
    assert RunDir(run).classes() == expected
    deploy = proto.read(RunDir(run).deploy)
    assert {layer.inner_product_param.num_output for layer in deploy.layer
            if layer.name.endswith("/classifier")} == {len(expected)}
    assert cli.run(tool("evaluate"), ["--run-dir", str(run), "--data-dir", str(data)]) == 0
    result = json.loads(RunDir(run).eval_json.read_text())
    assert result["classes"] == list(expected.names)
    assert result["abbrev"] == list(expected.abbrev)
    confusion = np.array(result["confusion"])
    assert confusion.shape == (len(expected),) * 2
    manifest = json.loads((data / "manifest.json").read_text())
    assert confusion.sum(axis=1).tolist() == manifest["splits"]["test"]["cells_per_class"]
    assert set(result["per_class"]) == set(expected.names)
    page = RunDir(run).eval_md.read_text()
    assert "| class | " + " | ".join(expected.abbrev) + " |" in page
    assert RunDir(run).confusion.is_file()


@pytest.mark.slow
def test_make_cv_kfold_3_trains_every_fold_pools_resumes_and_refuses_a_changed_series(
        caffe, tmp_path, tiny_schedule, capsys):
    source = synthetic.make_replica(tmp_path / "i3a", scale=0.005, progress=False,
                                    montage=False)
    cv_dir, data_root = tmp_path / "results" / "sri-kfold", tmp_path / "data" / "cv"
    argv = ["--source", str(source), "--protocol", "kfold", "--folds", "3", "--net", "sri",
            "--schedule", tiny_schedule, "--cv-dir", str(cv_dir), "--data-root", str(data_root),
            "--no-progress"]
    assert cli.run(tool("cv"), argv) == 0
    series = cv.CVDir(cv_dir)
    summary = json.loads(series.summary.read_text())
    n_cells = sum(synthetic.class_counts(0.005))
    # Pooled: every cell tested exactly once, by the fold that left it out.
    assert summary["n"] == n_cells == sum(f["n"] for f in summary["folds"])
    ids = [i for k in (1, 2, 3)
           for i in json.loads(series.fold(k).eval_json.read_text())["cells"]["ids"]]
    assert sorted(ids) == sorted(f"{i:05d}" for i in range(1, n_cells + 1))
    pooled = summary["pooled"]
    assert np.array(pooled["confusion"]).sum() == n_cells
    assert pooled["mca_ci"][0] <= pooled["mca"] <= pooled["mca_ci"][1]
    assert summary["bootstrap"] == "specimens"
    for k in (1, 2, 3):
        data = data_root / f"fold-{k}"
        m = json.loads((data / "manifest.json").read_text())
        assert (m["parameters"]["folds"], m["parameters"]["fold"]) == (3, k)
        assert m["splits"]["train"]["total"] > m["splits"]["train"]["cells"]   # rotated
        assert json.loads(series.fold(k).eval_json.read_text())["iteration"] == TINY.max_iter
    page = series.page.read_text()
    assert "stratified 3-fold cross-validation" in page
    assert "| **this series, pooled** (each cell tested once) |" in page
    assert "| paper: SRI, one random cell-level split of I3A" in page and "97.85" in page
    assert "| 3 | " in page and "(fold-3/README.md)" in page and series.confusion.is_file()
    # A rerun trains and evaluates nothing again.
    logs = [series.fold(k).log.read_text() for k in (1, 2, 3)]
    evals = [series.fold(k).eval_json.read_text() for k in (1, 2, 3)]
    capsys.readouterr()
    assert cli.run(tool("cv"), argv) == 0
    assert [series.fold(k).log.read_text() for k in (1, 2, 3)] == logs
    assert [series.fold(k).eval_json.read_text() for k in (1, 2, 3)] == evals
    assert "nothing to do" in capsys.readouterr().out
    # Another K into the same series is refused before anything is built or trained.
    stamp = (data_root / "fold-1" / "manifest.json").stat().st_mtime_ns
    rc = cli.run(tool("cv"), [a if a != "3" else "2" for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and "(folds, folds_asked differ)" in err and "give another CV_DIR" in err
    assert (data_root / "fold-1" / "manifest.json").stat().st_mtime_ns == stamp
    assert [series.fold(k).log.read_text() for k in (1, 2, 3)] == logs


@pytest.mark.slow
def test_a_series_stopped_at_an_interrupted_fold_resumes_without_retraining(
        caffe, tmp_path, tiny_schedule, monkeypatch):
    """When a fold's training ends interrupted (outcome from train.train, which every plan's cell calls; Caffe's own SIGINT
    snapshot and resume are tested in test_train.py) the series stops with no summary; the
    rerun trains no finished fold again, evaluates what is left and writes the summary. Grouped
    loso: no specimen is tested in two folds."""
    source = replicas.make_folders(tmp_path / "folders", per_class=12, specimens_per_class=3)
    cfg = cv.CVConfig(source=source, protocol="loso", folds=2, net="sri",
                      schedule=tiny_schedule, cv_dir=tmp_path / "cv",
                      data_root=tmp_path / "data")
    real_train = execute.train.train
    calls = []

    def interrupted_second(run_cfg, progress=True, manifest_extra=None):
        calls.append(run_cfg.run_dir)
        session = real_train(run_cfg, progress, manifest_extra)
        if len(calls) == 2:
            session.outcome = "interrupted"
        return session
    monkeypatch.setattr(execute.train, "train", interrupted_second)
    assert cv.run_cv(cfg, progress=False) is None
    assert not cfg.cv.summary.exists() and not cfg.cv.fold(2).eval_json.exists()
    logs = [cfg.cv.fold(k).log.read_text() for k in (1, 2)]
    monkeypatch.setattr(execute.train, "train", real_train)
    assert cv.run_cv(cfg, progress=False).path == cfg.cv.path
    assert [cfg.cv.fold(k).log.read_text() for k in (1, 2)] == logs
    summary = json.loads(cfg.cv.summary.read_text())
    assert [f["k"] for f in summary["folds"]] == [1, 2] and summary["n"] == 4 * 12
    tested = [set(f["specimens"]) for f in summary["folds"]]
    assert tested[0] and tested[1] and not tested[0] & tested[1]
    assert summary["plan"]["one_specimen_per_fold"] is False
    assert "grouped 2-fold by specimen" in cfg.cv.page.read_text()


def test_make_cv_refuses_a_protocol_without_folds_and_a_missing_source(tmp_path, capsys):
    """make's default PROTOCOL=cell, and a source that is not there: one line, exit 2, nothing
    written."""
    argv = ["--source", str(tmp_path), "--cv-dir", str(tmp_path / "cv"), "--data-root",
            str(tmp_path / "data")]
    assert cli.run(tool("cv"), argv + ["--protocol", "cell"]) == 2
    assert "not PROTOCOL=cell: give PROTOCOL=kfold K=5 or PROTOCOL=loso" in \
        capsys.readouterr().err
    argv[1] = str(tmp_path / "nowhere")
    assert cli.run(tool("cv"), argv + ["--protocol", "loso"]) == 2
    assert f"{tmp_path / 'nowhere'}: not a folder" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists() and not (tmp_path / "data").exists()
