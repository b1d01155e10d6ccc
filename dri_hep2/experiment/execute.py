"""Running a plan's cells (dri_hep2.experiment.plan): the one way every experiment trains,
evaluates and reports a run, and the local executor (`SCHEDULER=local`, and what ablation,
seeds and cv always did: the runs one after another in this process).

`run_cell` is also what a Slurm array task runs (dri_hep2.experiment.slurm): the executors
differ only in where a cell runs. A cell that is done (its manifest carries the cell's
fingerprint and its eval.json is of the final snapshot on the cell's data folder) is skipped;
an unfinished one resumes from its newest snapshot.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data import build, formats, split
from ..data.records import ReaderOptions
from ..data.folder import DataFolder
from ..errors import UserError
from . import evaluate, report, train
from .plan import Cell, Grid
from .run import RunDir, RunMismatch, sha256, snapshot_iteration

DONE, FINISHED, INTERRUPTED = "done", "finished", "interrupted"


def is_evaluated(run: RunDir, data: DataFolder) -> bool:
    """Whether eval.json is of the run's newest snapshot on this data folder."""
    if not run.eval_json.is_file():
        return False
    result = json.loads(run.eval_json.read_text())
    return (result.get("weights") == str(run.newest("caffemodel"))
            and result.get("data_dir") == str(data.path.resolve()))


def is_done(cell: Cell) -> bool:
    """Trained to its last iteration with this cell's configuration, and evaluated."""
    run, data = RunDir(cell.run_dir), DataFolder(cell.data_dir)
    state = run.newest("solverstate")
    if state is None or not run.solver.is_file():
        return False
    fingerprint = run.read_manifest().get("fingerprint")
    return (fingerprint in (None, cell.fingerprint())
            and snapshot_iteration(state) >= train.max_iter(run) and is_evaluated(run, data))


def check_same_data(run: RunDir, data: DataFolder) -> None:
    """A run with snapshots must resume on the data build it was trained on."""
    if run.newest("solverstate") is None:
        return
    trained_on = run.read_manifest().get("sha256", {}).get("data manifest.json")
    if trained_on and trained_on != sha256(data.manifest):
        raise RunMismatch(f"{run.path} was trained on another build of {data.path} (its input "
                          f"changed): delete {run.path} to train it again")


def run_cell(cell: Cell, progress: bool = True) -> str:
    """Train (or resume), evaluate and report one cell as `make train`, `make eval` and
    `make report` would. DONE: nothing to do; FINISHED: trained and evaluated now;
    INTERRUPTED: the training stopped early (a signal), rerun to resume."""
    if is_done(cell):
        return DONE
    run, data = RunDir(cell.run_dir), DataFolder(cell.data_dir)
    check_same_data(run, data)
    session = train.train(cell.config, progress=progress,
                          manifest_extra={"fingerprint": cell.fingerprint(), "cell": cell.name})
    if session.outcome != "finished":
        return INTERRUPTED
    evaluate.evaluate(run.path, data.path, gpus=cell.config.gpus)
    report.write_report(run.path)
    return FINISHED


def run_local(cells: list[Cell], progress: bool = True, label: str = "run") -> bool:
    """SCHEDULER=local: every cell in this process, in plan order; False if a training was
    interrupted (the same command resumes it)."""
    for cell in cells:
        if is_done(cell):
            print(f"[{label}] {cell.name}: done, {cell.run_dir}", flush=True)
            continue
        print(f"[{label}] {cell.name} ({cell.index + 1}/{len(cells)}): {cell.run_dir} "
              f"(random_seed {cell.config.seed})", flush=True)
        if run_cell(cell, progress) == INTERRUPTED:
            print(f"[{label}] {cell.name}: training interrupted; rerun to resume", flush=True)
            return False
    return True


def build_folds(grid: Grid, data_root: Path, progress: bool = True,
                options: dict | None = None, cells=None) -> dict[int, Path]:
    """The data folder of every fold of a folded grid, built (or found up to date) before
    any training: `<data_root>/fold-K`. `options`: build_dataset's keyword arguments (the
    input layout, the reader's and the augmentation's knobs); `cells`: the input already
    read (formats.read_cells), if the caller has it."""
    options = dict(options or {})
    if cells is None:
        cells = formats.read_cells(grid.source, options.get("format", "auto"),
                                   skip_bad=options.get("skip_bad", False),
                                   options=options.get("reader", ReaderOptions()))
    k = split.fold_count(cells.records, grid.protocol, grid.folds)
    # The format is settled: the folds' builds need not detect (and announce) it again.
    options["format"] = cells.format
    out = {}
    for fold in range(1, k + 1):
        path = Path(data_root) / f"fold-{fold}"
        build.build_dataset(grid.source, path, protocol=grid.protocol, folds=grid.folds,
                            fold=fold, seed=grid.base_seed, progress=progress, announce=None,
                            **options)
        out[fold] = path
    return out


def require_data(grid: Grid) -> None:
    """Before anything is written or submitted: the data the grid names exists."""
    if grid.folded:
        if not Path(grid.source).exists():
            raise UserError(f"I3A={grid.source}: no such folder (the folds are built from it "
                            "on this host, before any run starts)")
        return
    DataFolder(grid.data_dir).require("train", "val", "test")
