"""A sweep folder (`make sweep`, SWEEP_DIR): one grid of runs, its plan, its jobs and its
summary page. docs/sweeps.md.

    <SWEEP_DIR>
        plan.json             the grid (dri_hep2.experiment.plan) and every cell: index, name,
                              run folder, data folder, fingerprint
        sweep.lock            held while a `make sweep` prepares, runs or submits
        runs/<cell name>/     a run folder each (RunDir): dri-seed1, sri-seed2-fold3, ...
        data/fold-K/          a folded grid's data folders, built once before any run
        sweep.sbatch          SCHEDULER=slurm: the array job, one task per cell
        gather.sbatch         SCHEDULER=slurm: the summary job, after the array
        jobs.json             SCHEDULER=slurm: every submission (array and gather job ids,
                              the cells each array holds)
        slurm/                the Slurm tasks' output (%A_%a.out)
        summary.json, README.md   the summary (dri_hep2.experiment.sweep_page)

The folder is the sweep's identity: a second `make sweep` on it with the same plan goes on
where the first stopped (finished runs are not trained again), one with another plan is
refused with the settings that differ.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
from pathlib import Path

from .. import atomic
from ..errors import UserError
from ..folders import Folder, member
from ..gpus import Gpus
from ..net.options import NetOptions
from . import execute
from .plan import Cell, Grid


class SweepDir(Folder):
    plan = member("plan.json")
    lock_file = member("sweep.lock")
    runs = member("runs")
    data = member("data")
    sbatch = member("sweep.sbatch")
    gather_sbatch = member("gather.sbatch")
    jobs = member("jobs.json")
    slurm_logs = member("slurm")
    summary = member("summary.json")
    page = member("README.md")

    def run_dir(self, net: str, seed_k: int, fold: int | None) -> Path:
        """The layout of a sweep's run folders: runs/<cell name>."""
        return self.runs / (f"{net}-seed{seed_k}" + (f"-fold{fold}" if fold else ""))

    def read_jobs(self) -> list[dict]:
        return json.loads(self.jobs.read_text()) if self.jobs.is_file() else []


@contextlib.contextmanager
def locked(sweep: SweepDir):
    """One `make sweep` at a time on a folder: a second one is refused at once (an flock, so a
    killed process leaves no stale lock)."""
    sweep.path.mkdir(parents=True, exist_ok=True)
    with open(sweep.lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another 'make sweep' is working on {sweep.path} (it holds "
                            f"{sweep.lock_file}): wait for it to return") from None
        yield


def plan_differences(old: dict, new: dict) -> list[str]:
    """`seeds: 2 -> 3` for every setting of the grid that differs."""
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def prepare(grid: Grid, sweep: SweepDir, progress: bool = True) -> list[Cell]:
    """Check the data and the folder's plan, build a folded grid's data folders, write
    plan.json; returns the cells. Call under `locked(sweep)`."""
    execute.require_data(grid)
    wanted = grid.describe()
    if sweep.plan.is_file():
        old = json.loads(sweep.plan.read_text())["grid"]
        if diff := plan_differences(old, wanted):
            raise UserError(f"{sweep.path} holds a sweep of another plan ({'; '.join(diff)}): "
                            f"give another SWEEP_DIR, or delete {sweep.path} to start over")
    fold_data = (execute.build_folds(grid, sweep.data, progress=progress) if grid.folded
                 else None)
    cells = grid.cells(sweep.run_dir, fold_data=fold_data)
    atomic.write_text(sweep.plan, json.dumps(
        {"grid": wanted, "cells": [{**c.describe(), "fingerprint": c.fingerprint()}
                                   for c in cells]}, indent=2) + "\n")
    return cells


def grid_of(description: dict, gpus: Gpus = Gpus()) -> Grid:
    """The Grid that plan.json's "grid" describes (the inverse of Grid.describe)."""
    d = dict(description)
    return Grid(nets=tuple(d["nets"]), seeds=d["seeds"], protocol=d["protocol"],
                folds=d["folds"], schedule=d["schedule"],
                data_dir=Path(d["data_dir"]) if d["data_dir"] else Path("data"),
                source=Path(d["source"]) if d["source"] else None,
                net_options=NetOptions(**d["net_options"]), max_iter=d["max_iter"],
                snapshot=d["snapshot"], gpus=gpus, base_seed=d["base_seed"])


def load(sweep: SweepDir, gpus: Gpus = Gpus()) -> tuple[Grid, list[Cell]]:
    """The grid and cells of a prepared sweep folder (what an array task and the gather job
    read: they never rebuild data)."""
    if not sweep.plan.is_file():
        raise UserError(f"{sweep.plan} missing: run 'make sweep SWEEP_DIR={sweep.path}' first")
    plan = json.loads(sweep.plan.read_text())
    grid = grid_of(plan["grid"], gpus)
    fold_data = ({c["fold"]: Path(c["data_dir"]) for c in plan["cells"]} if grid.folded
                 else None)
    cells = grid.cells(sweep.run_dir, fold_data=fold_data)
    recorded = [(c["name"], c["run_dir"]) for c in plan["cells"]]
    if [(c.name, str(c.run_dir)) for c in cells] != recorded:
        raise UserError(f"{sweep.plan} does not match its own grid (edited by hand?): "
                        f"delete {sweep.path} to start over")
    return grid, cells


def cell_at(sweep: SweepDir, index: int, gpus: Gpus = Gpus()) -> Cell:
    """The cell of an array task (SLURM_ARRAY_TASK_ID)."""
    _, cells = load(sweep, gpus)
    if not 0 <= index < len(cells):
        raise UserError(f"task {index}: {sweep.plan} has cells 0-{len(cells) - 1}")
    return cells[index]

