"""Exact resume, checked (`make resume-check`, tests/test_resume.py): the same `make train`
command run once straight and, in each trial, killed with SIGKILL and run again until it
finishes; every trial's final .caffemodel must be the straight run's, byte for byte.

A kill lands at a random moment of the session it stops (uniform over the time the straight
run took for the iterations that session has left), or, with `during_write`, as soon as a snapshot is being written
(patch 12's `<file>.tmp` appears), the moment a stock Caffe leaves a truncated snapshot.
The folder, one run folder per run:

    CHECK_DIR/straight/   CHECK_DIR/trial-1/ ...   CHECK_DIR/resume_check.json
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import atomic
from ..folders import REPO_ROOT, Folder, member
from .run import RunDir, sha256, snapshot_iteration
from .train import max_iter


class CheckDir(Folder):
    """The folder of one resume check."""
    straight = member("straight")
    summary = member("resume_check.json")

    def trial(self, k: int) -> RunDir:
        return RunDir(self.path / f"trial-{k}")


@dataclass
class Kill:
    """One SIGKILL: when it was sent, and what the run folder held then."""
    after_s: float
    sent: bool                      # False: the session finished before its moment came
    during_write: bool              # a snapshot's <file>.tmp existed when it was sent
    newest_snapshot: int | None     # the newest snapshot's iteration before the kill


@dataclass
class Trial:
    kills: list[Kill] = field(default_factory=list)
    sha256: str | None = None
    identical: bool = False


def train_command(run_dir: Path, train_args: list[str]) -> list[str]:
    """tools/train.py (what `make train` runs) on `run_dir`, without a progress bar."""
    return [sys.executable, str(REPO_ROOT / "tools" / "train.py"), *train_args,
            "--run-dir", str(run_dir), "--no-progress"]


def _final_model(run: RunDir) -> Path:
    model = run.newest("caffemodel")
    if model is None:
        raise RuntimeError(f"{run.path} finished without a .caffemodel")
    return model


def _finish(command: list[str], log: Path) -> float:
    """Run a training to its end; its seconds. Output to `log`, which a failure names."""
    start = time.monotonic()
    with open(log, "a") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code}: see {log}")
    return time.monotonic() - start


def _kill(command: list[str], run: RunDir, log: Path, after_s: float | None) -> Kill:
    """Start a training in its own process group and SIGKILL the group: `after_s` seconds
    after the start, or (None) as soon as a snapshot write is under way."""
    before = run.newest("caffemodel") if run.snapshots.is_dir() else None
    with open(log, "a") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    start = time.monotonic()
    writing = False
    while proc.poll() is None:
        writing = run.snapshots.is_dir() and any(run.snapshots.glob("*.tmp"))
        if writing if after_s is None else time.monotonic() - start >= after_s:
            break
        time.sleep(0.0005 if after_s is None else 0.01)
    newest = run.newest("caffemodel") if run.snapshots.is_dir() else before
    sent = proc.poll() is None
    if sent:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return Kill(after_s=round(time.monotonic() - start, 3), sent=sent, during_write=writing,
                newest_snapshot=snapshot_iteration(newest) if newest else None)


def _left(run: RunDir) -> float:
    """The fraction of the training a rerun of `run` has left (1 before its first snapshot)."""
    state = run.newest("solverstate") if run.snapshots.is_dir() else None
    if state is None or not run.solver.is_file():
        return 1.0
    return max(0.0, 1 - snapshot_iteration(state) / max_iter(run))


def check(folder: CheckDir, train_args: list[str], trials: int = 3, kills: int = 2,
          during_write: bool = False, seed: int | None = None,
          say=print) -> tuple[str, list[Trial]]:
    """Train straight once (a rerun reuses the straight run it finished), then `trials`
    trials of `kills` SIGKILLs each (the first one while a snapshot is written, if
    `during_write`), each trial from an empty run folder. Returns the straight run's final
    sha256 and the trials; writes resume_check.json (all of it owned by this check)."""
    rng = random.Random(seed)
    straight = RunDir(folder.straight)
    log = folder.path / "trainings.log"
    folder.path.mkdir(parents=True, exist_ok=True)
    previous = json.loads(folder.summary.read_text()) if folder.summary.is_file() else {}
    if previous.get("train_args") == train_args and straight.path.is_dir():
        seconds = previous["straight_seconds"]     # the kill times need the real duration
    else:
        shutil.rmtree(straight.path, ignore_errors=True)
        seconds = _finish(train_command(straight.path, train_args), log)
    expected = sha256(_final_model(straight))
    say(f"straight: {_final_model(straight).name} sha256 {expected[:16]} ({seconds:.0f} s)")
    results = []
    for k in range(1, trials + 1):
        run, trial = folder.trial(k), Trial()
        shutil.rmtree(run.path, ignore_errors=True)
        command = train_command(run.path, train_args)
        for n in range(kills):
            after = (None if during_write and n == 0
                     else rng.uniform(0.0, seconds * _left(run)))
            trial.kills.append(_kill(command, run, log, after))
        _finish(command, log)
        trial.sha256 = sha256(_final_model(run))
        trial.identical = trial.sha256 == expected
        results.append(trial)
        where = ", ".join(("mid-write" if kill.during_write else f"{kill.after_s:.1f} s"
                           if kill.sent else "none (finished first)")
                          + f" (snapshot {kill.newest_snapshot})" for kill in trial.kills)
        say(f"trial {k}: killed at {where}; final model "
            f"{'identical' if trial.identical else 'DIFFERS'}")
    atomic.write_text(folder.summary, json.dumps(
        {"train_args": train_args, "straight_sha256": expected,
         "straight_seconds": round(seconds, 1), "trials": [asdict(t) for t in results]},
        indent=2) + "\n")
    return expected, results
