"""Train one variant with Caffe's own `caffe train` CLI into a run folder (RUN_DIR).

A run folder holds what was run and what came out of it (docs/design.md, "Runs"):
`solver.prototxt`, `train_val.prototxt`, `deploy.prototxt` (written here through the nets
engineer's builders, with this run's data and snapshot paths), `snapshots/`, `train.log` (the
full glog output, appended by every session), `run_manifest.json`, and after each session
`log.csv` and `curves.png`.

Caffe runs with the run folder as its working directory, so the solver's paths
(`train_val.prototxt`, `snapshots/<net>`) and the `.solverstate` files stay valid if the folder
is moved; only the data paths inside `train_val.prototxt` are absolute.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from . import atomic, caffe_env, caffe_log, paper

SNAPSHOT_DIR = "snapshots"
SOLVER = "solver.prototxt"
TRAIN_VAL = "train_val.prototxt"
DEPLOY = "deploy.prototxt"
LOG = "train.log"
MANIFEST = "run_manifest.json"
LOG_CSV = "log.csv"
CURVES = "curves.png"
SCHEDULES = ("paper", "short")
_GPU_LIST = re.compile(r"^(all|\d+(,\d+)*)$")
_ITER_OF = re.compile(r"_iter_(\d+)\.(solverstate|caffemodel)$")


class RunMismatch(RuntimeError):
    """The run folder holds snapshots of a different net, solver or data set."""


@dataclass(frozen=True)
class RunConfig:
    """One training run: the Makefile's NET, SCHEDULE, DATA_DIR, RUN_DIR and GPU."""
    net: str = "dri"
    schedule: str = "paper"
    data_dir: Path = Path("data")
    run_dir: Path | None = None     # default results/<net>
    gpu: str = ""                   # "" = CPU; "0" or "0,1" = Caffe's -gpu list

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r}: choose one of {SCHEDULES}")
        if self.gpu and not _GPU_LIST.match(self.gpu):
            raise ValueError(f"GPU={self.gpu!r}: give a device id or list like 0 or 0,1")
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "run_dir", Path(self.run_dir or Path("results") / self.net))


@dataclass
class Session:
    """What one `caffe train` session did (also recorded in the run manifest)."""
    resumed_from: str | None
    last_iteration: int | None = None
    outcome: str = "running"        # finished | interrupted | failed
    command: list[str] = field(default_factory=list)


def snapshot_iteration(path: Path) -> int:
    m = _ITER_OF.search(path.name)
    if not m:
        raise ValueError(f"{path} is not a Caffe snapshot (<prefix>_iter_<N>.<ext>)")
    return int(m.group(1))


def newest(run_dir: Path, suffix: str) -> Path | None:
    """The snapshot with the highest iteration (`.solverstate` or `.caffemodel`)."""
    found = [p for p in (Path(run_dir) / SNAPSHOT_DIR).glob(f"*_iter_*.{suffix}")]
    return max(found, key=snapshot_iteration) if found else None


def lmdb_entries(path: Path) -> int:
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        return env.stat()["entries"]
    finally:
        env.close()


def build_run_files(cfg: RunConfig) -> dict[str, str]:
    """The three prototxts of this run, as text, from the nets engineer's builders."""
    from .net import build, solver

    data_dir = cfg.data_dir.resolve()
    val_size = lmdb_entries(data_dir / "lmdb" / "val")
    train_val = build.train_val(cfg.net, data_dir=data_dir, bn_moving_average=(
        paper.SHORT_BN_MOVING_AVERAGE if cfg.schedule == "short" else None))
    deploy = build.deploy(cfg.net)
    solver_param = solver.solver(cfg.net, cfg.schedule, net_path=TRAIN_VAL,
                                 snapshot_prefix=f"{SNAPSHOT_DIR}/{cfg.net}", val_size=val_size)
    # The CLI's -gpu flag alone picks the device: with solver_mode GPU in the file, Caffe
    # would take GPU 0 even when GPU= is empty (caffe.cpp, train()).
    solver_param.solver_mode = solver_param.CPU
    # Before the first iteration BatchNorm has no stored statistics, so the TEST-phase pass at
    # iteration 0 gives NaN losses and accuracies of 1 (Accuracy counts NaN ties as hits):
    # skip it; it would also cost the demo a validation pass (ASSUMPTIONS.md T4).
    solver_param.test_initialization = False
    return {SOLVER: str(solver_param), TRAIN_VAL: str(train_val), DEPLOY: str(deploy)}


def prepare(cfg: RunConfig) -> Path:
    """Write the run's prototxts; on a rerun with snapshots, check they are unchanged."""
    run_dir = cfg.run_dir
    files = build_run_files(cfg)
    if newest(run_dir, "solverstate") is not None:
        changed = [name for name, text in files.items()
                   if not (run_dir / name).is_file() or (run_dir / name).read_text() != text]
        if changed:
            raise RunMismatch(
                f"{run_dir} holds snapshots of another configuration ({', '.join(changed)} "
                f"would change): use a new RUN_DIR, or delete {run_dir / SNAPSHOT_DIR} to "
                f"start over")
    for name, text in files.items():
        atomic.write_text(run_dir / name, text)
    (run_dir / SNAPSHOT_DIR).mkdir(parents=True, exist_ok=True)
    return run_dir


def sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> dict[str, object]:
    def git(*args: str) -> str:
        # No git (a container) or no repository (a copied tree): the run is recorded without
        # a commit rather than refused.
        try:
            out = subprocess.run(["git", *args], cwd=caffe_env.REPO_ROOT, capture_output=True,
                                 text=True)
        except FileNotFoundError:
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def _solver_field(solver_text: str, name: str) -> str | None:
    m = re.search(rf"^{name}: *\"?([^\"\n]+)\"?", solver_text, re.MULTILINE)
    return m.group(1) if m else None


def write_manifest(run_dir: Path, data_dir: Path | None, sessions: list[dict],
                   extra: dict) -> Path:
    """run_manifest.json: code, Caffe build, input hashes and every session's command."""
    data_manifest = data_dir / "manifest.json" if data_dir else None
    manifest = {
        **extra,
        "git": git_commit(),
        "caffe": caffe_env.build_info(),
        "sha256": {
            SOLVER: sha256(run_dir / SOLVER),
            TRAIN_VAL: sha256(run_dir / TRAIN_VAL),
            DEPLOY: sha256(run_dir / DEPLOY),
            "data manifest.json": sha256(data_manifest) if data_manifest else None,
        },
        "data_dir": str(data_dir.resolve()) if data_dir else None,
        "sessions": sessions,
    }
    return atomic.write_text(run_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_caffe(run_dir: Path, gpu: str = "", data_dir: Path | None = None,
              manifest_extra: dict | None = None, progress: bool = True) -> Session:
    """Run `caffe train` on RUN_DIR/solver.prototxt, resuming from the newest .solverstate.

    The glog output is appended to RUN_DIR/train.log; a tqdm bar follows the iterations.
    Ctrl-C (SIGINT) reaches Caffe, whose default `-sigint_effect stop` ends the solve and,
    with `snapshot_after_train` (default true), snapshots the current iteration first; this
    process waits for that snapshot before it returns with outcome `interrupted`.
    """
    from tqdm import tqdm

    run_dir = Path(run_dir)
    data_dir = Path(data_dir) if data_dir else None
    solver_text = (run_dir / SOLVER).read_text()
    max_iter = int(_solver_field(solver_text, "max_iter") or 0)
    state = newest(run_dir, "solverstate")
    command = [str(caffe_env.caffe_binary()), "train", f"-solver={SOLVER}",
               "-sigint_effect=stop"]
    if state is not None:
        command.append(f"-snapshot={state.relative_to(run_dir)}")
    if gpu:
        command.append(f"-gpu={gpu}")
    session = Session(resumed_from=str(state.relative_to(run_dir)) if state else None,
                      command=command)
    if state is not None and snapshot_iteration(state) >= max_iter:
        # Already trained: Caffe would only rerun the final validation.
        session.outcome, session.last_iteration = "finished", snapshot_iteration(state)
        return session

    manifest_path = run_dir / MANIFEST
    sessions = (json.loads(manifest_path.read_text())["sessions"]
                if manifest_path.is_file() else [])
    record = {"started": _now(), "argv": sys.argv, **session.__dict__}
    sessions.append(record)
    extra = dict(manifest_extra or {})
    write_manifest(run_dir, data_dir, sessions, extra)

    # INFO lines are what the log parser reads: make sure a GLOG_minloglevel set for pycaffe
    # in this process does not silence them, and keep glog from writing files under /tmp.
    env = {**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"}
    start_iter = snapshot_iteration(state) if state else 0
    bar = tqdm(total=max_iter, initial=start_iter, unit="it", disable=not progress,
               dynamic_ncols=True, desc=run_dir.name)
    interrupted = False

    def on_sigint(signum, frame):
        # A terminal's Ctrl-C reaches Caffe too; a SIGINT sent to this process alone is passed
        # on. Either way this process keeps reading until Caffe has snapshotted and exited.
        nonlocal interrupted
        interrupted = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    # Line-buffered, so that `tail -f train.log` follows the run.
    with open(run_dir / LOG, "a", encoding="utf-8", buffering=1) as log:
        log.write(f"# {_now()} {' '.join(command)}\n")
        proc = subprocess.Popen(command, cwd=run_dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        previous = signal.signal(signal.SIGINT, on_sigint)
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
            signal.signal(signal.SIGINT, previous)
        returncode = proc.wait()
    bar.close()

    if returncode != 0:
        session.outcome = "failed"
    elif interrupted:
        session.outcome = "interrupted"
    else:
        session.outcome = "finished"
    final = newest(run_dir, "solverstate")
    if final is not None:
        session.last_iteration = snapshot_iteration(final)
    record.update(session.__dict__, ended=_now(), returncode=returncode)
    write_manifest(run_dir, data_dir, sessions, extra)

    parsed = caffe_log.parse_file(run_dir / LOG)
    caffe_log.write_csv(parsed, run_dir / LOG_CSV)
    if parsed.rows:
        from . import report
        report.plot_curves(parsed, run_dir / CURVES)
    if session.outcome == "failed":
        tail = (run_dir / LOG).read_text(errors="replace").splitlines()[-25:]
        raise RuntimeError(f"caffe train exited with {returncode}; the end of "
                           f"{run_dir / LOG}:\n" + "\n".join(tail))
    return session


def train(cfg: RunConfig, progress: bool = True) -> Session:
    """`make train`: write the run's files, then train (or resume) with the caffe CLI."""
    if cfg.gpu and caffe_env.build_info().get("mode") == "CPU":
        raise caffe_env.CaffeNotFound(
            f"GPU={cfg.gpu} needs a CUDA build of Caffe, and {caffe_env.caffe_home()} is "
            f"CPU-only: build one with 'make caffe CUDA=1' (nvcc needed), or leave GPU empty")
    run_dir = prepare(cfg)
    return run_caffe(run_dir, cfg.gpu, data_dir=cfg.data_dir,
                     manifest_extra={"net": cfg.net, "schedule": cfg.schedule, "gpu": cfg.gpu},
                     progress=progress)
