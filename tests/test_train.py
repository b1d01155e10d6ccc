"""`caffe train` through dri_hep2.experiment.train: real Caffe on tiny LMDBs, no mocks."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dri_hep2.engine import caffe_log
from dri_hep2 import ledger
from dri_hep2.experiment import run, train
from dri_hep2.gpus import Gpus
from dri_hep2.data.folder import DataFolder
from dri_hep2.errors import UserError
from dri_hep2.experiment.run import RunDir


def tiny_train_val(caffe, data_dir: Path):
    """A three-branch net with the contract's output names (loss1/loss ... loss3/top-1)."""
    from caffe import layers as L, params as P

    def data(split: str, phase: str, batch: int):
        return L.Data(source=str(data_dir / "lmdb" / split), backend=P.Data.LMDB,
                      batch_size=batch, ntop=2, include=dict(phase=getattr(caffe, phase)),
                      transform_param=dict(scale=1 / 64, mean_file=str(
                          data_dir / "lmdb" / "mean.binaryproto")))

    n = caffe.NetSpec()
    n.data, n.label = data("train", "TRAIN", 6)
    n.conv = L.Convolution(n.data, num_output=16, kernel_size=5, stride=2,
                           weight_filler=dict(type="xavier"))
    n.relu = L.ReLU(n.conv, in_place=True)
    for k, weight in ((1, 0.3), (2, 0.3), (3, 1.0)):
        fc = L.InnerProduct(n.relu, num_output=6, weight_filler=dict(type="xavier"))
        setattr(n, f"loss{k}/classifier", fc)
        setattr(n, f"loss{k}/loss", L.SoftmaxWithLoss(fc, n.label, loss_weight=weight))
        setattr(n, f"loss{k}/top-1", L.Accuracy(fc, n.label, include=dict(phase=caffe.TEST)))
    net = n.to_proto()
    # The validation Data layer makes the same tops in the TEST phase.
    t = caffe.NetSpec()
    t.data, t.label = data("val", "TEST", 6)
    test_data = t.to_proto().layer[0]
    test_data.name = "data_val"
    net.layer.insert(1, test_data)
    return net


def write_tiny_run(caffe, run_dir: Path, data_dir: Path, max_iter: int, display: int = 10,
                   snapshot: int = 0) -> Path:
    from caffe.proto import caffe_pb2

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RunDir.train_val).write_text(str(tiny_train_val(caffe, data_dir)))
    solver = caffe_pb2.SolverParameter(
        net=RunDir.train_val, base_lr=0.01, momentum=0.9, lr_policy="step", gamma=0.5,
        stepsize=max(1, max_iter // 2), max_iter=max_iter, display=display, test_iter=[2],
        test_interval=max(1, max_iter // 2), snapshot=snapshot,
        snapshot_prefix=f"{RunDir.snapshots}/tiny", solver_mode=caffe_pb2.SolverParameter.CPU,
        random_seed=1)
    (run_dir / RunDir.solver).write_text(str(solver))
    (run_dir / RunDir.snapshots).mkdir(exist_ok=True)
    return run_dir


def test_short_training_lowers_the_loss(caffe, tiny_data_dir, tmp_path):
    run_dir = write_tiny_run(caffe, tmp_path / "run", tiny_data_dir, max_iter=60)
    session = train.run_caffe(run_dir, data=DataFolder(tiny_data_dir), progress=False)

    assert session.outcome == "finished" and session.last_iteration == 60
    log = caffe_log.parse_file(run_dir / RunDir.log)
    _, losses = log.series("loss")
    assert losses[-1] < 0.5 * losses[0]
    # Every output by name: three losses in train, losses and accuracies in test, and lr.
    assert log.names("train") == ["loss1/loss", "loss2/loss", "loss3/loss"]
    assert set(log.names("test")) == {f"loss{k}/{m}" for k in (1, 2, 3) for m in ("loss", "top-1")}
    assert log.series("lr")[1][-1] == pytest.approx(0.005)
    assert (run_dir / "snapshots" / "tiny_iter_60.caffemodel").is_file()
    assert (run_dir / RunDir.log_csv).read_text().startswith("iteration,lr,loss,")
    assert (run_dir / RunDir.curves).stat().st_size > 10_000
    manifest = json.loads((run_dir / RunDir.manifest).read_text())
    assert manifest["sha256"]["solver.prototxt"] == run.sha256(run_dir / RunDir.solver)
    assert manifest["caffe"]["build_id"]
    assert manifest["sessions"][0]["outcome"] == "finished"
    assert manifest["sessions"][0]["command"][1:3] == ["train", "-solver=solver.prototxt"]


def test_interrupt_snapshots_and_rerun_resumes(caffe, tiny_data_dir, tmp_path):
    max_iter = 3000
    run_dir = write_tiny_run(caffe, tmp_path / "run", tiny_data_dir, max_iter=max_iter,
                             display=20)
    script = ("import sys; from dri_hep2.experiment import train; "
              "s = train.run_caffe(sys.argv[1], progress=False); print(s.outcome)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(run_dir)],
                            stdout=subprocess.PIPE, text=True)
    log_path = run_dir / RunDir.log
    deadline = time.monotonic() + 60
    while not (log_path.is_file() and "Iteration 100 " in log_path.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)          # Ctrl-C of the toolkit's process only
    out, _ = proc.communicate(timeout=60)
    assert out.strip() == "interrupted"
    state = RunDir(run_dir).newest("solverstate")
    stopped_at = run.snapshot_iteration(state)
    assert 100 <= stopped_at < max_iter

    session = train.run_caffe(run_dir, progress=False)
    assert session.resumed_from == f"snapshots/tiny_iter_{stopped_at}.solverstate"
    assert session.outcome == "finished" and session.last_iteration == max_iter
    log = caffe_log.parse_file(log_path)
    assert log.resumed_at and log.resumed_at[0] >= stopped_at
    # The second session started at the snapshot, not at iteration 0.
    second = log_path.read_text().split("Resuming from")[1]
    first_iteration = int(caffe_log.TRAIN_LINE.search(second).group(1))
    assert first_iteration >= stopped_at > 0
    manifest = json.loads((run_dir / RunDir.manifest).read_text())
    assert [s["outcome"] for s in manifest["sessions"]] == ["interrupted", "finished"]


def test_run_config_checks_gpu_and_schedule():
    assert train.RunConfig(gpus=Gpus.parse("0,1")).gpus.flag == "0,1"
    assert train.RunConfig(net="sri").run_dir == Path("results/sri")
    with pytest.raises(UserError):
        Gpus.parse("cuda:0")
    with pytest.raises(UserError):
        train.RunConfig(schedule="long")


def test_prepare_writes_this_runs_files_and_guards_a_resume(caffe, tiny_data_dir, tmp_path):
    cfg = train.RunConfig(net="dri", schedule="short", data_dir=tiny_data_dir,
                          run_dir=tmp_path / "run")
    run_dir = train.prepare(cfg)
    solver = (run_dir / RunDir.solver).read_text()
    for line in ('net: "train_val.prototxt"', 'snapshot_prefix: "snapshots/dri"',
                 "solver_mode: CPU", "test_initialization: false", "test_iter: 1"):
        assert line in solver
    assert f'source: "{tiny_data_dir.resolve()}/lmdb/train"' in (run_dir / RunDir.train_val).read_text()
    assert 'name: "prob"' in (run_dir / RunDir.deploy).read_text()
    # T7: short runs keep BatchNorm statistics of the last ~5 iterations, paper runs Caffe's.
    fraction = f"moving_average_fraction: {ledger.SHORT_BN_MOVING_AVERAGE}"
    assert (run_dir / RunDir.train_val).read_text().count(fraction) > 30
    paper_files = train.build_run_files(train.RunConfig(net="dri", data_dir=tiny_data_dir))
    assert "moving_average_fraction" not in paper_files[RunDir.train_val]

    (run_dir / "snapshots" / "dri_iter_500.solverstate").write_bytes(b"")
    train.prepare(cfg)                                   # same configuration: resumable
    with pytest.raises(run.RunMismatch, match="solver.prototxt"):
        train.prepare(train.RunConfig(net="dri", schedule="paper", data_dir=tiny_data_dir,
                                      run_dir=run_dir))


def test_real_dri_trains_and_evaluates(caffe, tiny_data_dir, tmp_path):
    """The nets engineer's DRI through the CLI for a few iterations, then `make eval`."""
    from dri_hep2.experiment import evaluate

    cfg = train.RunConfig(net="dri", schedule="short", data_dir=tiny_data_dir,
                          run_dir=tmp_path / "run")
    run_dir = train.prepare(cfg)
    solver = run_dir / RunDir.solver
    solver.write_text(solver.read_text().replace(
        f"max_iter: {train_max_iter(solver)}", "max_iter: 4"))
    session = train.run_caffe(run_dir, data=DataFolder(tiny_data_dir), progress=False)
    assert session.outcome == "finished" and session.last_iteration == 4
    result = evaluate.evaluate(run_dir, tiny_data_dir)
    assert result["iteration"] == 4 and result["n"] == 12
    assert set(result["combos"]) == {"3", "1+3", "2+3", "1+2+3"}


def train_max_iter(solver: Path) -> int:
    return int(next(line.split(":")[1] for line in solver.read_text().splitlines()
                    if line.startswith("max_iter:")))


def test_git_commit_without_git_on_path(monkeypatch):
    """A container without git records the run with no commit instead of failing."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert run.git_commit() == {"commit": None, "dirty": False}


def test_a_failing_caffe_train_is_recorded_and_reported_with_its_log(caffe, tiny_data_dir,
                                                                     tmp_path):
    """caffe train exiting non-zero (here: its training LMDB vanished) ends in TrainingFailed
    with the end of train.log, and the session is recorded as failed."""
    broken = tmp_path / "broken"
    broken.mkdir()
    run_dir = write_tiny_run(caffe, tmp_path / "run", broken, max_iter=20)
    with pytest.raises(train.TrainingFailed, match="caffe train exited with") as failed:
        train.run_caffe(run_dir, progress=False)
    # The log tail says why and where, without glog's stack trace.
    assert "Check failed: mdb_status == 0 (2 vs. 0) No such file or directory" in \
        str(failed.value)
    assert "Creating layer data" in str(failed.value) and "    @ " not in str(failed.value)
    manifest = json.loads((run_dir / RunDir.manifest).read_text())
    assert manifest["sessions"][-1]["outcome"] == "failed"
    assert manifest["sessions"][-1]["returncode"] != 0


def test_a_finished_run_is_not_trained_again(caffe, tiny_data_dir, tmp_path):
    run_dir = write_tiny_run(caffe, tmp_path / "run", tiny_data_dir, max_iter=10)
    assert train.run_caffe(run_dir, progress=False).outcome == "finished"
    log_size = (run_dir / RunDir.log).stat().st_size
    again = train.run_caffe(run_dir, progress=False)
    assert (again.outcome, again.last_iteration) == ("finished", 10)
    assert again.resumed_from == "snapshots/tiny_iter_10.solverstate"
    assert (run_dir / RunDir.log).stat().st_size == log_size          # Caffe did not run
    assert len(json.loads((run_dir / RunDir.manifest).read_text())["sessions"]) == 1


def test_gpu_is_refused_on_a_cpu_build_before_anything_runs(caffe, tiny_data_dir, tmp_path):
    from dri_hep2.engine import caffe_env

    if caffe_env.build_info()["mode"] != "CPU":
        pytest.skip("this Caffe is a CUDA build: GPU= is allowed")
    cfg = train.RunConfig(net="sri", schedule="short", data_dir=tiny_data_dir,
                          run_dir=tmp_path / "run", gpus=Gpus.parse("0"))
    with pytest.raises(caffe_env.CaffeNotFound, match="GPU=0 needs a CUDA build"):
        train.train(cfg)
    assert not (tmp_path / "run").exists()


def test_training_without_a_data_folder_says_which_command_makes_it(tmp_path):
    cfg = train.RunConfig(net="sri", schedule="short", data_dir=tmp_path / "nodata",
                          run_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"lmdb/train missing: .*Run 'make data I3A="):
        train.train(cfg)
    assert not (tmp_path / "run").exists()


def test_several_gpus_are_refused_without_nccl(tmp_path, monkeypatch):
    """GPU=0,1 is Caffe's data parallelism: a CUDA build without NCCL is refused up front."""
    from dri_hep2.engine import caffe_env

    home = tmp_path / "caffe"
    home.mkdir()
    (home / "BUILD_OK").write_text("version=x\nmode=GPU (CUDA)\nbuild_id=x\nnccl=0\n")
    monkeypatch.setenv("CAFFE_HOME", str(home))
    caffe_env.require_gpu_build(Gpus.parse("0"))                  # one GPU: fine
    for gpus in ("0,1", "all"):
        with pytest.raises(caffe_env.CaffeNotFound, match="needs a Caffe built with NCCL"):
            caffe_env.require_gpu_build(Gpus.parse(gpus))
    (home / "BUILD_OK").write_text("version=x\nmode=GPU (CUDA)\nbuild_id=x\nnccl=1\n")
    caffe_env.require_gpu_build(Gpus.parse("0,1"))


def test_demo_timing_keeps_every_call(tmp_path):
    """A `make demo` rerun that only skips the finished training must not overwrite the first
    call's phase times (it did: the file said "train": 0.0 after `make demo-seeds`)."""
    run = RunDir(tmp_path / "run")
    first = {"data": 4.1, "train": 562.0, "eval": 4.6, "report": 0.6}
    run.record_demo_timing(0.1, first, 400, ended="t1")
    runs = run.record_demo_timing(0.1, {"data": 1.1, "train": 0.0, "eval": 6.4, "report": 0.5},
                                  0, ended="t2")
    saved = json.loads(run.demo_timing.read_text())
    assert saved == {"scale": 0.1, "runs": runs}
    assert [(r["ended"], r["iterations_trained"]) for r in runs] == [("t1", 400), ("t2", 0)]
    assert runs[0]["seconds"] == first
