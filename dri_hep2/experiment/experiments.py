"""Experiments made of several runs: seed series (`make seeds`) and the Table 3(a) ablation
(`make ablation`), with their summary pages. Each is a plan (dri_hep2.experiment.plan) in the
folders these targets have always used, executed here (execute.run_local): every run trained,
evaluated and reported as `make train`, `make eval` and `make report` would; a finished run is
not trained or evaluated again, an interrupted experiment resumes."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import atomic, paper
from . import execute, report, train
from . import series as series_mod
from ..gpus import Gpus
from ..data import build
from ..data.records import ReaderOptions
from ..data.folder import DataFolder
from ..errors import UserError
from .run import snapshot_iteration
from .plan import Grid
from .series import SeriesDir


def series_grid(base: train.RunConfig, n: int) -> Grid:
    """A seed series as a plan: the base configuration with seeds 1..N."""
    return Grid(nets=(base.net,), seeds=n, schedule=base.schedule, data_dir=base.data_dir,
                net_options=base.net_options, max_iter=base.max_iter, snapshot=base.snapshot,
                gpus=base.gpus)


def run_series(base: train.RunConfig, n: int, vary_split: bool = False,
               progress: bool = True) -> SeriesDir | None:
    """Train, evaluate and report seed-1 ... seed-N (a plan executed here); returns the series
    (None if a training was interrupted: rerun to resume)."""
    if n < 1:
        raise UserError(f"N={n}: a seed series needs at least one run")
    series = series_mod.series_of(base.run_dir)
    grid = series_grid(base, n)
    seed_data = (lambda k: split_data(base.data_dir, grid.seed_of(k))) if vary_split else None
    cells = grid.cells(lambda net, k, fold: series.run(k).path, seed_data=seed_data)
    _reuse_base_run(base, cells[0].config)
    if not execute.run_local(cells, progress, label="seeds"):
        return None
    series_mod.write_summary(series, base.net, base.schedule, base.data_dir, vary_split)
    if base.run.eval_json.is_file():
        report.write_report(base.run_dir)     # the base run's page shows its series
    return series


def split_data(data_dir: Path, seed: int) -> Path:
    """A data folder like `data_dir` but split (and shuffled) with `seed`, rebuilt from the I3A
    folder and parameters its manifest records: `<data_dir>-split<seed>`."""
    manifest = DataFolder(data_dir).read_manifest()
    if manifest is None:
        raise UserError(f"{DataFolder(data_dir).manifest} missing: VARY_SPLIT needs the data "
                        f"folder of 'make data' to rebuild it with other split seeds")
    p = manifest["parameters"]
    out = Path(f"{data_dir}-split{seed}")
    reader = dict(p.get("reader") or {"format": "i3a"})
    build.build_dataset(manifest["inputs"]["folder"], out, protocol=p["protocol"], seed=seed,
                        skip_bad=p["skip_bad"], steps=tuple(p["rotation_steps_deg"]),
                        border=p["border"], stretch=p["stretch"], progress=False,
                        format=reader.pop("format"), reader=ReaderOptions(**reader),
                        folds=p.get("folds"), fold=p.get("fold") or 1)
    return out


def _reuse_base_run(base: train.RunConfig, first: train.RunConfig) -> None:
    """seed-1 is the base configuration: copy a finished base run that wrote the same files."""
    source, target = base.run, first.run
    if target.path.exists() or base.seed != first.seed or base.data_dir != first.data_dir:
        return
    finished = source.newest("solverstate")
    if finished is None or not source.eval_json.is_file():
        return
    files = train.build_run_files(first)
    same = all((source / name).is_file() and (source / name).read_text() == text
               for name, text in files.items())
    if same and snapshot_iteration(finished) >= train.max_iter(source):
        print(f"[seeds] seed-1 is {source.path} (same configuration, finished): copied")
        with atomic.staged_path(target.path, is_dir=True) as tmp:
            shutil.copytree(source.path, tmp, dirs_exist_ok=True)




def run_ablation(schedule: str, data_dir: Path, results: Path, gpus: Gpus = Gpus(),
                 variants=tuple(paper.VARIANTS), seeds: int | None = None,
                 progress: bool = True, max_iter: int | None = None,
                 snapshot: int | None = None) -> Path | None:
    """Table 3(a): every variant trained and evaluated with one schedule in
    `results/<variant>` (or, with `seeds`, a seed series `results/<variant>-seeds`), then
    `results/ablation.md`. None if a training was interrupted (rerun to resume)."""
    run_dirs = {v: results / v for v in paper.VARIANTS}
    grid = Grid(nets=tuple(variants), schedule=schedule, data_dir=data_dir, gpus=gpus,
                max_iter=max_iter, snapshot=snapshot)
    if seeds:
        for cell in grid.cells(lambda net, k, fold: run_dirs[net]):
            if run_series(cell.config, seeds, progress=progress) is None:
                return None
        run_dirs = {v: series_mod.series_of(d).run(1).path for v, d in run_dirs.items()}
    elif not execute.run_local(grid.cells(lambda net, k, fold: run_dirs[net]), progress,
                               label="ablation"):
        return None
    return report.write_ablation(run_dirs, results / report.ABLATION_PAGE, schedule)
