"""Exact resume (patch 12, issue 19), real `caffe train` of shallow_inception on a synthetic
replica: a run killed with SIGKILL (at a random moment, and while a snapshot is being written),
stopped by SIGTERM, or left with a truncated newest snapshot, and run again, ends with the same
final .caffemodel, byte for byte, as the run never interrupted; MAX_ITER extends a run and
other changes are refused."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from dri_hep2 import cli
from dri_hep2.engine import caffe_log
from dri_hep2.experiment import resume_check, train
from dri_hep2.net import proto
from dri_hep2.experiment.run import RunDir, RunMismatch, sha256, snapshot_iteration

MAX_ITER, SNAPSHOT = 16, 2


def train_args(data, max_iter=MAX_ITER, snapshot=SNAPSHOT) -> list[str]:
    return ["--net", "shallow_inception", "--schedule", "short", "--data-dir", str(data),
            "--max-iter", str(max_iter), "--snapshot", str(snapshot)]


def losses(run: RunDir) -> list[tuple[int, float]]:
    """Every (iteration, loss) line of the run's log, of all its sessions."""
    iterations, values = caffe_log.parse_file(run.log).series("loss")
    return list(zip(iterations, values))


@pytest.fixture(scope="module")
def checked(tmp_path_factory, sweep_data):
    """One straight run, and one trial killed twice: first while a snapshot is written, then
    at a random moment (resume_check, as `make resume-check` runs it)."""
    folder = resume_check.CheckDir(tmp_path_factory.mktemp("resume") / "check")
    expected, trials = resume_check.check(folder, train_args(sweep_data), trials=1, kills=2,
                                          during_write=True, seed=19)
    return folder, expected, trials[0]


@pytest.mark.slow
def test_a_run_killed_twice_resumes_to_the_same_bytes(checked):
    folder, expected, trial = checked
    straight, killed = RunDir(folder.straight), folder.trial(1)
    assert trial.identical and sha256(killed.newest("caffemodel")) == expected
    # The first kill hit a snapshot write: its temporary file was removed on resume, and no
    # snapshot of the trial was ever truncated.
    assert trial.kills[0].during_write and trial.kills[0].sent
    assert "a snapshot write that did not finish" in (folder.path / "trainings.log").read_text()
    assert not list(killed.snapshots.glob("*.tmp"))
    # Every loss the killed run logged, before and after each kill, is the straight run's at
    # the same iteration.
    reference = dict(losses(straight))
    assert losses(killed) and all(reference[it] == loss for it, loss in losses(killed))
    sessions = killed.read_manifest()["sessions"]
    assert sessions[-1]["outcome"] == "finished" and len(sessions) >= 2


def halve(path):
    """Cut in the middle: the cut lands inside a blob, the file no longer parses."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_last(path, field: str, message_type: str):
    """Cut at a field's boundary: what a kill during an in-place write can leave, and what
    still parses (a caffemodel without its last two layers with weights and all after them,
    a state without its last two history blobs)."""
    message = getattr(proto.caffe_pb2, message_type)()
    message.ParseFromString(path.read_bytes())
    items = getattr(message, field)
    with_data = [k for k, item in enumerate(items) if field == "history" or item.blobs]
    del items[with_data[-2]:]
    path.write_bytes(message.SerializeToString())


@pytest.mark.slow
@pytest.mark.parametrize("suffix, cut, fault", [
    ("caffemodel", halve, "{model} does not parse"),
    ("caffemodel", lambda p: drop_last(p, "layer", "NetParameter"),
     "{model} lacks 2 layers' weights (cut short)"),
    ("solverstate", halve, "its .solverstate does not parse"),
    ("solverstate", lambda p: drop_last(p, "history", "SolverState"),
     "its .solverstate's history does not match the model (cut short)"),
], ids=["model-halved", "model-without-layers", "state-halved", "state-without-history"])
def test_a_damaged_newest_snapshot_is_set_aside_and_the_run_completes(
        checked, tmp_path, suffix, cut, fault, capsys):
    folder, expected, _ = checked
    run = RunDir(tmp_path / "run")
    shutil.copytree(folder.straight, run.path)
    newest = run.snapshots / f"shallow_inception_iter_{MAX_ITER}.{suffix}"
    cut(newest)

    session = train.run_caffe(run, progress=False)
    assert session.resumed_from == f"snapshots/shallow_inception_iter_{MAX_ITER - SNAPSHOT}.solverstate"
    assert session.outcome == "finished" and session.last_iteration == MAX_ITER
    said = capsys.readouterr().err
    state = newest.with_suffix(".solverstate")
    fault = fault.format(model=newest.with_suffix(".caffemodel").name)
    assert f"{state} cannot be resumed from ({fault}): moved with its .caffemodel" in said
    assert sorted(p.name for p in run.broken.iterdir()) == [
        f"shallow_inception_iter_{MAX_ITER}.caffemodel",
        f"shallow_inception_iter_{MAX_ITER}.solverstate"]
    assert sha256(run.snapshots / f"shallow_inception_iter_{MAX_ITER}.caffemodel") == expected


@pytest.mark.slow
def test_sigterm_to_every_process_snapshots_stops_and_resumes_exactly(checked, sweep_data, tmp_path):
    folder, expected, _ = checked
    run = RunDir(tmp_path / "run")
    command = resume_check.train_command(run.path, train_args(sweep_data))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run.snapshots.is_dir() and run.newest("solverstate")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    # What scancel and a preemption do: SIGTERM to every process of the job, Caffe too.
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == cli.INTERRUPTED, out
    stopped = snapshot_iteration(run.newest("solverstate"))
    assert f"interrupted at iteration {stopped}" in out and stopped < MAX_ITER
    assert run.read_manifest()["sessions"][-1]["outcome"] == "interrupted"

    assert subprocess.run(command, capture_output=True).returncode == 0
    assert sha256(run.newest("caffemodel")) == expected


@pytest.mark.slow
def test_max_iter_extends_a_finished_run_and_other_changes_are_refused(
        checked, sweep_data, tmp_path):
    folder, _, _ = checked
    run = RunDir(tmp_path / "run")
    shutil.copytree(folder.straight, run.path)
    cfg = dict(net="shallow_inception", schedule="short", data_dir=sweep_data, run_dir=run.path)

    with pytest.raises(RunMismatch, match=f"snapshot: {SNAPSHOT} -> 5"):
        train.train(train.RunConfig(**cfg, max_iter=MAX_ITER, snapshot=5), progress=False)
    with pytest.raises(RunMismatch, match=f"max_iter: {MAX_ITER} -> {MAX_ITER - 4}"):
        train.train(train.RunConfig(**cfg, max_iter=MAX_ITER - 4, snapshot=SNAPSHOT),
                    progress=False)
    assert run.newest("solverstate").name == f"shallow_inception_iter_{MAX_ITER}.solverstate"

    proc = subprocess.run(resume_check.train_command(
        run.path, train_args(sweep_data, max_iter=MAX_ITER + 2)), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"extending the run from {MAX_ITER} to {MAX_ITER + 2} iterations" in proc.stderr
    sessions = run.read_manifest()["sessions"]
    assert sessions[-1]["resumed_from"] == f"snapshots/shallow_inception_iter_{MAX_ITER}.solverstate"
    assert sessions[-1]["last_iteration"] == MAX_ITER + 2


@pytest.mark.slow
def test_with_caffes_own_stream_and_seeding_a_resume_differs(checked, tmp_path, monkeypatch):
    """The control: the same resume with patch 12's stream and reseeding switched off
    (CAFFE_EXACT_RESUME=0, what the stock build does) does not give the straight run's bytes,
    so the equality above is patch 12's doing and the comparison can fail."""
    folder, expected, _ = checked
    run = RunDir(tmp_path / "run")
    shutil.copytree(folder.straight, run.path)
    for suffix in ("caffemodel", "solverstate"):
        (run.snapshots / f"shallow_inception_iter_{MAX_ITER}.{suffix}").unlink()
    monkeypatch.setenv("CAFFE_EXACT_RESUME", "0")
    session = train.run_caffe(run, progress=False)
    assert session.outcome == "finished" and session.last_iteration == MAX_ITER
    assert sha256(run.newest("caffemodel")) != expected
