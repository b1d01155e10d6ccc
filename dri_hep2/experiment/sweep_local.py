"""SCHEDULER=local for a sweep: the plan prepared, every unfinished run trained here one after
another (execute.run_local), then the summary page. The Slurm executor is
dri_hep2.experiment.slurm; both leave the same run folders and page."""
from __future__ import annotations

from . import execute, sweep_page
from .plan import Grid
from .sweep import SweepDir, locked, prepare


def run(grid: Grid, sweep: SweepDir, progress: bool = True) -> bool:
    """False if a training was interrupted (the same command resumes)."""
    execute.require_data(grid)          # before the lock makes the folder
    with locked(sweep):
        cells = prepare(grid, sweep, progress)
        if not execute.run_local(cells, progress, label="sweep"):
            return False
        sweep_page.write(sweep)
    return True
