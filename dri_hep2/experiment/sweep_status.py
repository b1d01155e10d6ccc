"""`make sweep-status`: one line per run of a sweep, from the run folders and, where the sweep
went to Slurm, from `squeue` (what is queued or running) and `sacct` where it answers (how a
task ended; it needs Slurm's accounting storage, which a small cluster may not run).

    dri-seed1          finished: MCA 95.84 % [91.7, 98.9] at iteration 400
    dri-seed2          running at iteration 140 (job 12_1)
    sri-seed1          pending (job 12_2)
    sri-seed2          failed: <the last lines of its log>
"""
from __future__ import annotations

import json
from pathlib import Path

from ..engine import caffe_log
from ..errors import UserError
from . import execute, slurm
from .report import headline
from .run import RunDir, snapshot_iteration
from .sweep import SweepDir, load

TAIL = 3


def _last_iteration(run: RunDir) -> int | None:
    """The newest of the log's last displayed iteration and the newest snapshot (a schedule
    displays every 20 iterations, a short run may snapshot more often)."""
    found = []
    if run.log.is_file():
        for line in run.log.read_text(errors="replace").splitlines()[-400:]:
            if m := caffe_log.TRAIN_LINE.search(line) or caffe_log.FINAL_LOSS.search(line):
                found.append(int(m.group(1)))
    if state := run.newest("solverstate"):
        found.append(snapshot_iteration(state))
    return max(found, default=None)


def _tail(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines()
             if line.strip() and not line.startswith("    @ ")]
    return " | ".join(lines[-TAIL:])


def _task_output(sweep: SweepDir, index: int) -> Path | None:
    """The newest Slurm output file of a cell's task (slurm/<array>_<index>.out)."""
    found = sorted(sweep.slurm_logs.glob(f"*_{index}.out"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def lines(sweep: SweepDir) -> list[str]:
    _, cells = load(sweep)
    # Without squeue (the cluster stopped, or another host) the run folders still say what is
    # finished; the last line says what is not known.
    unknown = None
    try:
        in_queue = slurm.queued(sweep)
    except UserError as e:
        in_queue, unknown = {}, f"(queued and running tasks unknown: {e})"
    ended = slurm.finished_states(sweep)
    width = max(len(c.name) for c in cells)
    out = []
    for cell in cells:
        run = RunDir(cell.run_dir)
        at = _last_iteration(run)
        if execute.is_done(cell):
            result = json.loads(run.eval_json.read_text())
            text = f"finished: {headline(result)} at iteration {result['iteration']}"
        elif cell.index in in_queue:
            job, state = in_queue[cell.index]
            text = (f"running at iteration {at or 0} (job {job}_{cell.index})"
                    if state == "RUNNING" else f"{state.lower()} (job {job}_{cell.index})")
        else:
            sessions = run.read_manifest().get("sessions", [])
            # Caffe killed by a signal (scancel, preemption, a node's shutdown) has not failed:
            # its run resumes from the newest snapshot.
            failed = (sessions and sessions[-1].get("outcome") == "failed"
                      and (sessions[-1].get("returncode") or 0) >= 0)
            output = _task_output(sweep, cell.index)
            state = ended.get(cell.index)
            if failed or state in ("FAILED", "NODE_FAIL", "OUT_OF_MEMORY"):
                source = run.log if failed else output
                text = (f"failed{f' ({state})' if state else ''}: "
                        + (_tail(source) if source and source.is_file() else "no log"))
            elif at is not None:
                text = (f"stopped at iteration {at}{f' ({state})' if state else ''}: "
                        "'make sweep' again resumes it")
            elif output is not None and output.is_file() and output.stat().st_size:
                text = f"failed before training: {_tail(output)}"
            else:
                text = "not started"
        out.append(f"{cell.name:<{width}}  {text}")
    return out + ([unknown] if unknown else [])
