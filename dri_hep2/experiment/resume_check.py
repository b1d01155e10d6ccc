"""Exact resume, checked (`make resume-check`, tests/test_resume.py): the same `make train`
command run once straight and, in each trial, killed with SIGKILL and run again until it
finishes; every trial's final .caffemodel must be the straight run's, byte for byte.

A kill lands at a random moment of the session it stops: once the session trains in a
snapshot interval drawn among those it has left (one left over for each kill still to come),
a random part of one interval's time in the straight run later, so that it falls between
snapshots whatever the machine's load; or, with `during_write`, as soon as a snapshot is being written (patch 12's
`<file>.tmp` appears), the moment a stock Caffe leaves a truncated snapshot.
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
from ..net import proto
from .run import RunDir, sha256, snapshot_iteration


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


@dataclass(frozen=True)
class Moment:
    """When to kill: once the session trains and the run holds the snapshot of
    `after_iteration`, `delay_s` later; or, `during_write`, as soon as a snapshot file is
    being written."""
    after_iteration: int = 0
    delay_s: float = 0.0
    during_write: bool = False


def _newest_iteration(run: RunDir) -> int:
    newest = run.newest("caffemodel") if run.snapshots.is_dir() else None
    return snapshot_iteration(newest) if newest else 0


def _solving(run: RunDir) -> int:
    """How many sessions of the run have begun to train (Caffe logs "Solving <net>")."""
    return run.log.read_text(errors="replace").count("] Solving ") if run.log.is_file() else 0


def _draw(rng: random.Random, run: RunDir, last: int, interval: int,
          seconds_per_iter: float, kills_after: int) -> Moment:
    """A random moment of the next session of `run`: one of the snapshot intervals it has
    left, but for one each for the `kills_after` kills still to come, a uniform fraction into
    it (by the straight run's pace)."""
    start = _newest_iteration(run)
    boundaries = list(range(start, last, interval))
    return Moment(after_iteration=rng.choice(boundaries[:max(1, len(boundaries) - kills_after)]),
                  delay_s=rng.uniform(0.0, interval * seconds_per_iter))


def _kill(command: list[str], run: RunDir, log: Path, moment: Moment) -> Kill:
    """Start a training in its own process group and SIGKILL the group at `moment`."""
    with open(log, "a") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    start = time.monotonic()
    sessions = _solving(run)  # Caffe's "Solving" lines so far: this session's comes next
    reached = None            # when training reached the interval the moment is in
    writing = False
    while proc.poll() is None:
        writing = run.snapshots.is_dir() and any(run.snapshots.glob("*.tmp"))
        if moment.during_write:
            if writing:
                break
        else:
            if reached is None and _newest_iteration(run) >= moment.after_iteration \
                    and _solving(run) > sessions:
                reached = time.monotonic()
            if reached is not None and time.monotonic() - reached >= moment.delay_s:
                break
        time.sleep(0.0005 if moment.during_write else 0.01)
    newest = _newest_iteration(run)
    sent = proc.poll() is None
    if sent:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return Kill(after_s=round(time.monotonic() - start, 3), sent=sent, during_write=writing,
                newest_snapshot=newest or None)


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
    solver = proto.read(straight.solver, proto.caffe_pb2.SolverParameter)
    last, interval = solver.max_iter, solver.snapshot or solver.max_iter
    results = []
    for k in range(1, trials + 1):
        run, trial = folder.trial(k), Trial()
        shutil.rmtree(run.path, ignore_errors=True)
        command = train_command(run.path, train_args)
        for n in range(kills):
            if _newest_iteration(run) >= last:
                break                 # finished before this kill's turn
            moment = (Moment(during_write=True) if during_write and n == 0
                      else _draw(rng, run, last, interval, seconds / last, kills - n - 1))
            trial.kills.append(_kill(command, run, log, moment))
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
