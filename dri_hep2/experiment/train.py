"""Train one variant with Caffe's own `caffe train` CLI into a run folder (experiment.run).

`prepare` writes the run's solver, train_val and deploy prototxts through the net builders,
with this run's data and snapshot paths; `run_caffe` runs (or resumes) `caffe train` inside
the run folder, follows its log with a progress bar, and records each session in the run
manifest. docs/training.md describes the run folder.
"""
from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import fcntl
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from .. import atomic, ledger, schedules
from ..engine import caffe_env, caffe_log
from . import report
from ..gpus import Gpus
from ..data import lmdb_io
from ..data.folder import DataFolder
from ..errors import UserError
from ..net import build, proto, solver
from ..net.options import NetOptions
from .run import RunDir, snapshot_iteration


# What makes a training snapshot and stop: Ctrl-C, a scheduler's TERM, Slurm's USR1 warning.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class TrainingFailed(UserError):
    """`caffe train` exited with an error; the message ends with the tail of its log."""


@dataclass(frozen=True)
class RunConfig:
    """One training run: the Makefile's NET, SCHEDULE, DATA_DIR, RUN_DIR and GPU."""
    net: str = "dri"
    schedule: str = "paper"
    data_dir: Path = Path("data")
    run_dir: Path | None = None     # default results/<net>
    gpus: Gpus = Gpus()             # empty: CPU
    seed: int = ledger.RANDOM_SEED  # Caffe's random_seed: weight fillers, dropout (N14)
    net_options: NetOptions = NetOptions()     # the knobs of the lost figures (ledger N*)
    max_iter: int | None = None     # MAX_ITER=: the schedule's iteration count overridden
    snapshot: int | None = None     # SNAPSHOT=: the schedule's snapshot interval overridden

    def __post_init__(self):
        schedules.get(self.schedule)
        for name in ("max_iter", "snapshot"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name.upper()}={value}: give a positive number of iterations")
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "run_dir", Path(self.run_dir or Path("results") / self.net))

    @property
    def run(self) -> RunDir:
        return RunDir(self.run_dir)

    @property
    def data(self) -> DataFolder:
        return DataFolder(self.data_dir)

    def overrides(self) -> dict[str, int]:
        """The schedule's numbers this run overrides (recorded in the run manifest)."""
        return {name: value for name in ("max_iter", "snapshot")
                if (value := getattr(self, name)) is not None}


@dataclass
class Session:
    """What one `caffe train` session did (also recorded in the run manifest)."""
    resumed_from: str | None
    last_iteration: int | None = None
    outcome: str = "running"        # finished | interrupted | failed
    command: list[str] = field(default_factory=list)


def build_run_files(cfg: RunConfig) -> dict[str, str]:
    """The three prototxts of this run, as text, from the net builders."""
    data = cfg.data.resolve().require("train", "val")
    schedule = schedules.get(cfg.schedule)
    run = cfg.run
    knobs = asdict(cfg.net_options)
    # The classifiers are as wide as the data folder's class list (the paper's six on I3A).
    knobs["num_classes"] = len(data.classes())
    train_val = build.train_val(cfg.net, data_dir=data.path,
                                bn_moving_average=schedule.bn_moving_average, **knobs)
    solver_param = solver.solver(cfg.net, cfg.schedule, net_path=RunDir.train_val,
                                 snapshot_prefix=run.snapshot_prefix(cfg.net),
                                 val_size=lmdb_io.lmdb_entries(data.lmdb("val")),
                                 random_seed=cfg.seed)
    # MAX_ITER= / SNAPSHOT=: a shorter or longer run of the same schedule (its learning-rate
    # steps stay where the schedule puts them). Written into solver.prototxt, so a rerun with
    # other values on a run with snapshots is refused by check_unchanged, but for a larger
    # MAX_ITER, which extends the run.
    for name, value in cfg.overrides().items():
        setattr(solver_param, name, value)
    # The CLI's -gpu flag alone picks the device: with solver_mode GPU in the file, Caffe
    # would take GPU 0 even when GPU= is empty (caffe.cpp, train()).
    solver_param.solver_mode = solver_param.CPU
    # Before the first iteration BatchNorm has no stored statistics, so the TEST-phase pass at
    # iteration 0 gives NaN losses and accuracies of 1 (Accuracy counts NaN ties as hits):
    # skip it; it would also cost the demo a validation pass (ASSUMPTIONS.md T4).
    solver_param.test_initialization = False
    return {RunDir.solver: proto.to_text(solver_param),
            RunDir.train_val: proto.to_text(train_val),
            RunDir.deploy: proto.to_text(build.deploy(cfg.net, **knobs))}


def prepare(cfg: RunConfig, files: dict[str, str] | None = None) -> RunDir:
    """Write the run's prototxts (`files`, default build_run_files); on a rerun with
    snapshots, check they are unchanged."""
    run = cfg.run
    files = files or build_run_files(cfg)
    if run.newest("solverstate") is not None:
        extended_from = run.check_unchanged(files)
        if extended_from is not None:
            print(f"{run.path}: extending the run from {extended_from} to {cfg.max_iter} "
                  "iterations (MAX_ITER); it resumes from its newest snapshot", file=sys.stderr)
    for name, text in files.items():
        atomic.write_text(run / name, text)
    run.snapshots.mkdir(parents=True, exist_ok=True)
    return run


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def max_iter(run: RunDir) -> int:
    """The solver's max_iter: where a run is finished."""
    solver_param = proto.read(run.require(RunDir.solver).solver, proto.caffe_pb2.SolverParameter)
    return solver_param.max_iter


def _command(run: RunDir, state: Path | None, gpus: Gpus) -> list[str]:
    command = [str(caffe_env.caffe_binary()), "train", f"-solver={RunDir.solver}",
               "-sigint_effect=stop"]
    if state is not None:
        command.append(f"-snapshot={state.relative_to(run.path)}")
    if gpus:
        command.append(f"-gpu={gpus.flag}")
    return command


def run_caffe(run: RunDir | str | Path, gpus: Gpus = Gpus(), data: DataFolder | None = None,
              manifest_extra: dict | None = None, progress: bool = True) -> Session:
    """Run `caffe train` on the run's solver, resuming from the newest .solverstate.

    The glog output is appended to train.log; a tqdm bar follows the iterations. Ctrl-C
    (SIGINT), SIGTERM and SIGUSR1 (STOP_SIGNALS) reach Caffe as SIGINT, whose `-sigint_effect
    stop` ends the solve and, with `snapshot_after_train` (default true), snapshots the current
    iteration first; this process waits for that snapshot before it returns with outcome
    `interrupted`.
    """
    run = RunDir(run)
    last = max_iter(run)
    state = run.resume_state(say=lambda line: print(line, file=sys.stderr))
    session = Session(resumed_from=str(state.relative_to(run.path)) if state else None,
                      command=_command(run, state, gpus))
    start_iter = snapshot_iteration(state) if state else 0
    if start_iter >= last and state is not None:
        # Already trained: Caffe would only rerun the final validation.
        session.outcome, session.last_iteration = "finished", start_iter
        return session

    sessions = run.read_manifest().get("sessions", [])
    record = {"started": _now(), "argv": sys.argv, **session.__dict__}
    sessions.append(record)
    extra = dict(manifest_extra or {})
    run.write_manifest(data, sessions, extra)

    returncode, interrupted = _follow(run, session, start_iter, last, progress)
    session.outcome = ("failed" if returncode != 0 else
                       "interrupted" if interrupted else "finished")
    final = run.newest("solverstate")
    if final is not None:
        session.last_iteration = snapshot_iteration(final)
    record.update(session.__dict__, ended=_now(), returncode=returncode)
    run.write_manifest(data, sessions, extra)

    report.write_log_outputs(run)
    if session.outcome == "failed":
        raise TrainingFailed(f"caffe train exited with {returncode}; the end of {run.log} "
                             "(glog's stack trace left out):\n" + "\n".join(_log_tail(run.log)))
    return session


def _log_tail(log: Path, lines: int = 12) -> list[str]:
    """The last lines of a failed session's log without glog's stack trace, so that the
    FATAL line (`F... Check failed: ...`) and what Caffe was doing stay in view."""
    text = log.read_text(errors="replace").splitlines()
    kept = [line for line in text if not line.startswith("    @ ")
            and line != "*** Check failure stack trace: ***"]
    return kept[-lines:]


def _caffe_child() -> None:
    """In the `caffe train` child, before exec. A scheduler stops a job by sending SIGTERM to
    every process in it (scancel, preemption): Caffe, which snapshots on SIGINT only, would
    die without a snapshot. SIGTERM is blocked in Caffe (the signal mask survives exec; an
    ignored disposition would not, glog's failure handler takes SIGTERM over) and this process
    passes it on as SIGINT. And should this process die, Caffe gets SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no orphan trains on in a folder whose lock is gone."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _follow(run: RunDir, session: Session, start_iter: int, total: int,
            progress: bool) -> tuple[int, bool]:
    """Start `caffe train`, copy its output to train.log and drive the progress bar until it
    exits; returns its exit status and whether it was interrupted."""
    # INFO lines are what the log parser reads: make sure a GLOG_minloglevel set for pycaffe
    # in this process does not silence them, and keep glog from writing files under /tmp.
    env = {**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"}
    bar = tqdm(total=total, initial=start_iter, unit="it", disable=not progress,
               dynamic_ncols=True, desc=run.name)
    interrupted = False

    def on_stop(signum, frame):
        # A terminal's Ctrl-C reaches Caffe too; a SIGINT sent to this process alone, a
        # scheduler's SIGTERM or Slurm's SIGUSR1 before the time limit (docs/sweeps.md) is
        # passed on as SIGINT, on which Caffe snapshots and stops (-sigint_effect=stop).
        # Either way this process keeps reading until Caffe has snapshotted and exited.
        nonlocal interrupted
        interrupted = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    # Line-buffered, so that `tail -f train.log` follows the run.
    with open(run.log, "a", encoding="utf-8", buffering=1) as log:
        log.write(f"# {_now()} {' '.join(session.command)}\n")
        proc = subprocess.Popen(session.command, cwd=run.path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1,
                                preexec_fn=_caffe_child)
        previous = {sig: signal.signal(sig, on_stop) for sig in STOP_SIGNALS}
        try:
            for line in proc.stdout:
                log.write(line)
                if m := caffe_log.TRAIN_LINE.search(line) or caffe_log.FINAL_LOSS.search(line):
                    it = int(m.group(1))
                    session.last_iteration = it
                    bar.update(it - bar.n)
                    bar.set_postfix_str(f"loss={float(m.groups()[-1]):.4g}")
                elif progress and (m := caffe_log.OUTPUT.search(line)) and m.group(1) == "Test":
                    bar.write(f"  val @{session.last_iteration or start_iter}: "
                              f"{m.group(2)} = {m.group(3)}", file=sys.stderr)
                elif "Optimization stopped early" in line:
                    interrupted = True
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        returncode = proc.wait()
    bar.close()
    return returncode, interrupted


def train(cfg: RunConfig, progress: bool = True, manifest_extra: dict | None = None) -> Session:
    """`make train`: write the run's files, then train (or resume) with the caffe CLI.
    `manifest_extra` adds keys to the run manifest (a sweep's fingerprint of the run)."""
    caffe_env.require_gpu_build(cfg.gpus)
    files = build_run_files(cfg)        # the data checked before the run folder is made
    with run_lock(cfg.run):
        run = prepare(cfg, files)
        return run_caffe(run, cfg.gpus, data=cfg.data,
                         manifest_extra={"net": cfg.net, "schedule": cfg.schedule,
                                         "gpu": cfg.gpus.flag, "seed": cfg.seed,
                                         "net_options": cfg.net_options.changed(),
                                         "overrides": cfg.overrides(),
                                         "classes": cfg.data.classes().manifest(),
                                         **(manifest_extra or {})},
                         progress=progress)


@contextlib.contextmanager
def run_lock(run: RunDir):
    """Hold the run folder's lock while training: a second training of the same folder (two
    `make train`, two sweep tasks of one run) is refused instead of writing the same
    snapshots. An flock: released by the kernel when the process dies, so a killed run leaves
    no stale lock."""
    run.path.mkdir(parents=True, exist_ok=True)
    with open(run.lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run.path} is being trained by another process (it holds "
                            f"{run.lock}): wait for it, or stop it first") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
