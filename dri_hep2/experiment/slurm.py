"""SCHEDULER=slurm: a sweep's cells as one Slurm job array, and a gather job after it.

`submit` writes `sweep.sbatch` (one array task per unfinished cell: `#SBATCH
--array=0-(N-1)%MAX_PARALLEL`, requeueable, with `--signal=B:USR1@<s>` so that a task warned
before its time limit makes Caffe snapshot, then requeues itself and resumes) and
`gather.sbatch` (`--dependency=afterany:<array>`: the summary page), submits both with
`sbatch --parsable`, and returns. Each task runs `tools/sweep.py task`, which resolves its cell
from SLURM_ARRAY_TASK_ID in plan.json and trains (resuming), evaluates and reports it exactly
as SCHEDULER=local would (dri_hep2.experiment.execute.run_cell). The data is built before
submission, on the submit host; tasks only read it.

Settings come from make's variables or a small `key = value` file (SLURM_CONFIG): partition,
account, time, mem, cpus_per_task, max_parallel, signal_seconds, gres. docs/sweeps.md.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from .. import atomic, ledger
from ..errors import UserError
from ..folders import REPO_ROOT
from ..gpus import Gpus
from . import execute, sweep_page
from .plan import Cell, Grid
from .sweep import SweepDir, cell_at, locked, prepare

TOOL = REPO_ROOT / "tools" / "sweep.py"


@dataclass(frozen=True)
class SlurmOptions:
    """What a user sets for their cluster; None leaves the cluster's own default."""
    partition: str | None = None
    account: str | None = None
    time: str | None = None             # --time, e.g. 12:00:00 or 1-00:00:00
    mem: str | None = None              # --mem, e.g. 16G
    cpus_per_task: int | None = None
    max_parallel: int | None = None     # the array's %throttle
    signal_seconds: int = ledger.SLURM_SIGNAL_SECONDS   # T11: USR1 this long before the limit
    gres: str | None = None             # default gpu:1 when GPU= is set

    def __post_init__(self):
        limit = time_seconds(self.time) if self.time else None
        if limit is not None and limit < self.signal_seconds + SIGNAL_RESOLUTION:
            raise UserError(
                f"time = {self.time}: a task's time limit must exceed signal_seconds "
                f"({self.signal_seconds} s) by {SIGNAL_RESOLUTION} s or more; Slurm sends the "
                "USR1 up to a minute early, and a task warned as it starts only snapshots and "
                "requeues, again and again")

    @classmethod
    def from_file(cls, path: Path) -> dict:
        """`key = value` lines (# comments) of a SLURM_CONFIG file, checked."""
        names = {f.name: f.type for f in fields(cls)}
        out = {}
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, sep, value = (part.strip() for part in line.partition("="))
            if not sep or key not in names:
                raise UserError(f"{path}:{number}: expected 'key = value' with a key of "
                                f"{', '.join(names)}: {line!r}")
            out[key] = _typed(key, value, f"{path}:{number}")
        return out

    @classmethod
    def make(cls, config: Path | None = None, **given) -> "SlurmOptions":
        """The file's settings, then make's variables over them (the ones given)."""
        settings = cls.from_file(config) if config else {}
        settings.update({k: _typed(k, v, k.upper()) for k, v in given.items()
                         if v not in (None, "")})
        return cls(**settings)

    def directives(self, gpus: Gpus) -> list[str]:
        gres = self.gres or ("gpu:1" if gpus else None)
        pairs = [("partition", self.partition), ("account", self.account),
                 ("time", self.time), ("mem", self.mem),
                 ("cpus-per-task", self.cpus_per_task), ("gres", gres)]
        return [f"#SBATCH --{k}={v}" for k, v in pairs if v is not None]


# slurmctld sends --signal's warning up to 60 s before the time it was asked for; a task
# warned in its first minute would do no training at all.
SIGNAL_RESOLUTION = 120


def time_seconds(text: str) -> int | None:
    """Seconds of a Slurm --time value (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S); None: no limit."""
    if text.lower() in ("infinite", "unlimited"):
        return None
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise UserError(f"time = {text}: not a Slurm time (minutes, M:S, H:M:S, D-H, D-H:M "
                        "or D-H:M:S)")
    days, a, b, c = (int(x) if x is not None else None for x in m.groups())
    if days is not None:                    # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = a, b or 0, c or 0
    elif c is not None:                     # H:M:S
        hours, minutes, seconds = a, b, c
    else:                                   # M, M:S
        hours, minutes, seconds = 0, a, b or 0
    return (((days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def _typed(key: str, value, where: str):
    if key in ("cpus_per_task", "max_parallel", "signal_seconds"):
        try:
            number = int(value)
        except ValueError:
            raise UserError(f"{where}: {key} takes a whole number, not {value!r}") from None
        if number < 1:
            raise UserError(f"{where}: {key} must be at least 1")
        return number
    return str(value)


# --- checks before anything is submitted ------------------------------------------------------
def check_cluster(options: SlurmOptions) -> None:
    """sbatch on PATH and the partition known: one line each, nothing submitted."""
    for tool in ("sbatch", "squeue"):
        if shutil.which(tool) is None:
            raise UserError(f"SCHEDULER=slurm needs Slurm's {tool} on PATH, and there is none "
                            "on this host: submit from a login node of your cluster, or try "
                            "it here with 'make slurm-up' (docs/sweeps.md)")
    if options.partition:
        out = _slurm("sinfo", "-h", "-o", "%R")
        known = sorted(set(out.split()))
        if options.partition not in known:
            raise UserError(f"SLURM_PARTITION={options.partition}: no such partition on this "
                            f"cluster (sinfo lists {', '.join(known) or 'none'})")


def _slurm(*command: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError(f"{command[0]}: not on PATH (Slurm's client commands are needed "
                        "here)") from None
    if out.returncode != 0:
        raise UserError(f"{' '.join(command)} failed ({out.returncode}): "
                        f"{(out.stderr or out.stdout).strip()}")
    return out.stdout


# --- the scripts ------------------------------------------------------------------------------
def _tool_command(*args: str) -> str:
    return shlex.join([sys.executable, str(TOOL), *args])


def array_spec(indices: list[int], max_parallel: int | None) -> str:
    """`0-3%2` for a whole plan, `1,3%2` for what is left of it."""
    if indices == list(range(indices[0], indices[-1] + 1)):
        spec = f"{indices[0]}-{indices[-1]}" if len(indices) > 1 else str(indices[0])
    else:
        spec = ",".join(map(str, indices))
    return spec + (f"%{max_parallel}" if max_parallel else "")


def sbatch_text(sweep: SweepDir, cells: list[Cell], options: SlurmOptions, gpus: Gpus) -> str:
    """The array job, readable: what each line does is said above it."""
    name = f"dri-sweep-{sweep.path.name}"
    lines = ["#!/bin/bash",
             f"# {len(cells)} runs of the sweep in {sweep.path} (plan.json); one array task per",
             "# run, SLURM_ARRAY_TASK_ID = the run's index there. `make sweep` writes this file",
             "# and submits only the runs that are not finished (with --array on its command",
             "# line); edit SLURM_CONFIG or make's SLURM_* variables rather than this file.",
             f"#SBATCH --job-name={name}",
             f"#SBATCH --array={array_spec([c.index for c in cells], options.max_parallel)}",
             f"#SBATCH --output={sweep.slurm_logs}/%A_%a.out",
             "# A requeued task writes on after its earlier output rather than over it.",
             "#SBATCH --open-mode=append",
             f"#SBATCH --chdir={REPO_ROOT}",
             "# A preempted or failed node puts the task back in the queue; it resumes from its",
             "# newest snapshot.",
             "#SBATCH --requeue",
             f"# USR1 {options.signal_seconds} s before the time limit: Caffe snapshots and "
             "stops,",
             "# the task requeues itself and goes on from that snapshot (ledger T11).",
             f"#SBATCH --signal=B:USR1@{options.signal_seconds}",
             *options.directives(gpus),
             "set -euo pipefail",
             "# Ignored until Python has its own handler: a USR1 during its start would kill it.",
             "trap '' USR1",
             "# exec: the batch shell becomes the task, so the USR1 above reaches it.",
             "exec " + _tool_command("task", "--sweep-dir", str(sweep.path),
                                     *(["--gpu", gpus.flag] if gpus else []))]
    return "\n".join(lines) + "\n"


def gather_text(sweep: SweepDir, options: SlurmOptions) -> str:
    lines = ["#!/bin/bash",
             f"# The summary page of the sweep in {sweep.path}, after every array task ended",
             "# (submitted with --dependency=afterany:<array job>).",
             f"#SBATCH --job-name=dri-sweep-{sweep.path.name}-gather",
             f"#SBATCH --output={sweep.slurm_logs}/%j-gather.out",
             f"#SBATCH --chdir={REPO_ROOT}",
             *(f"#SBATCH --{k}={v}" for k, v in (("partition", options.partition),
                                                 ("account", options.account)) if v),
             "set -euo pipefail",
             "exec " + _tool_command("gather", "--sweep-dir", str(sweep.path))]
    return "\n".join(lines) + "\n"


# --- submitting -------------------------------------------------------------------------------
# The states of a job that has not ended. squeue's own default leaves out some (a suspended or
# held task is still the sweep's), and with -j it lists ended jobs too (for MinJobAge seconds).
ACTIVE_STATES = "PD,R,CG,CF,S,ST,RQ,RH,RF,RS,SI,SO"


def queued(sweep: SweepDir) -> dict[int, tuple[str, str]]:
    """Cell index -> (array job id, state) of this sweep's array tasks that have not ended."""
    arrays = {j["array"] for j in sweep.read_jobs()}
    if not arrays:
        return {}
    # Not -j <ids>: squeue refuses the whole list once the controller has forgotten one of
    # them. %F is the array's job id (%A, each task's own id once it runs), %K the task index
    # (-r: one line per task, pending ones too).
    out = _slurm("squeue", "-h", "-r", "--me", "-t", ACTIVE_STATES, "-o", "%F %K %T")
    states = {}
    for line in out.splitlines():
        job, task, state = line.split()
        if job in arrays and task.isdigit():
            states[int(task)] = (job, state)
    return states


def submit(grid: Grid, sweep: SweepDir, options: SlurmOptions, progress: bool = True) -> dict:
    """Check, prepare, submit the unfinished cells and the gather job; returns the record of
    this submission ({} when every run is finished: the summary is written at once)."""
    check_cluster(options)
    execute.require_data(grid)          # on the submit host, before anything is written
    with locked(sweep):
        cells = prepare(grid, sweep, progress)
        in_queue = queued(sweep)
        todo = [c for c in cells if c.index not in in_queue and not execute.is_done(c)]
        if not todo:
            if not in_queue:
                sweep_page.write(sweep)
            return {}
        sweep.slurm_logs.mkdir(parents=True, exist_ok=True)
        atomic.write_text(sweep.sbatch, sbatch_text(sweep, cells, options, grid.gpus))
        atomic.write_text(sweep.gather_sbatch, gather_text(sweep, options))
        array = _slurm("sbatch", "--parsable",
                       f"--array={array_spec([c.index for c in todo], options.max_parallel)}",
                       str(sweep.sbatch)).strip().split(";")[0]
        after = ":".join([array] + sorted({job for job, _ in in_queue.values()}))
        gather = _slurm("sbatch", "--parsable", f"--dependency=afterany:{after}",
                        str(sweep.gather_sbatch)).strip().split(";")[0]
        record = {"array": array, "gather": gather, "cells": [c.index for c in todo]}
        atomic.write_text(sweep.jobs, json.dumps(sweep.read_jobs() + [record], indent=2) + "\n")
        return record


# --- inside the allocation --------------------------------------------------------------------
def task(sweep: SweepDir, index: int, gpus: Gpus = Gpus()) -> str:
    """One array task: its cell trained (resuming), evaluated, reported. Stopped by USR1 (the
    time limit's warning) or TERM (scancel, preemption), Caffe snapshots; warned, the task
    requeues itself so it goes on, while a cancelled one stays cancelled."""
    # Outside a training (evaluating, reporting) the warning changes nothing: that work takes
    # seconds, the warning comes minutes before the limit. (A handler, not SIG_IGN, which
    # Caffe would inherit.)
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    cell = cell_at(sweep, index, gpus)
    outcome = execute.run_cell(cell, progress=False)
    if outcome == execute.INTERRUPTED and os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        # The warning leaves the job RUNNING; scancel makes it COMPLETING (a preempted job is
        # Slurm's to requeue). scontrol would requeue a cancelled job too, undoing the cancel.
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                               text=True).stdout.strip()
        if state == "RUNNING":
            subprocess.run(["scontrol", "requeue", job], check=False)
    return outcome


def sacct_answers() -> bool:
    """Whether sacct answers here (it needs Slurm's accounting storage)."""
    if shutil.which("sacct") is None:
        return False
    out = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now"], capture_output=True,
                         text=True)
    return out.returncode == 0 and "disabled" not in (out.stdout + out.stderr)


def finished_states(sweep: SweepDir) -> dict[int, str]:
    """Cell index -> sacct's final state (COMPLETED, FAILED, CANCELLED, TIMEOUT ...) of its
    newest task, where sacct answers; {} where accounting is off."""
    jobs = sweep.read_jobs()
    if not jobs or not sacct_answers():
        return {}
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ",".join(j["array"] for j in jobs),
                          "-o", "JobID,State"], capture_output=True, text=True)
    states = {}
    for line in out.stdout.splitlines():
        job, _, state = line.partition("|")
        if m := re.fullmatch(r"\d+_(\d+)", job):
            states[int(m.group(1))] = state.split()[0] if state else state
    return states

