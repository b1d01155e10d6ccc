"""Experiments made of several runs: seed series (`make seeds`) and the Table 3(a) ablation
(`make ablation`), with their summary pages. Each run is trained, evaluated and reported as
`make train`, `make eval` and `make report` would; an interrupted experiment resumes."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from .. import atomic, paper
from . import evaluate, report, train
from . import series as series_mod
from ..gpus import Gpus
from ..data import build, formats
from ..data.folder import DataFolder
from ..errors import UserError
from .run import snapshot_iteration
from .series import SeriesDir


def train_eval_report(cfg: train.RunConfig, progress: bool = True) -> bool:
    """One run from training to its results page; False if the training was interrupted."""
    if train.train(cfg, progress=progress).outcome != "finished":
        return False
    evaluate.evaluate(cfg.run_dir, cfg.data_dir, gpus=cfg.gpus)
    report.write_report(cfg.run_dir)
    return True


def run_series(base: train.RunConfig, n: int, vary_split: bool = False,
               progress: bool = True) -> SeriesDir | None:
    """Train, evaluate and report seed-1 ... seed-N; returns the series (None if a training
    was interrupted: rerun to resume)."""
    if n < 1:
        raise UserError(f"N={n}: a seed series needs at least one run")
    series = series_mod.series_of(base.run_dir)
    for k in range(1, n + 1):
        seed = series_mod.seed_of(k)
        data_dir = split_data(base.data_dir, seed) if vary_split else base.data_dir
        cfg = dataclasses.replace(base, run_dir=series.run(k).path, seed=seed, data_dir=data_dir)
        if k == 1:
            _reuse_base_run(base, cfg)
        print(f"[seeds] {series.run(k).path} (random_seed {cfg.seed}"
              + (f", split seed {cfg.seed}" if vary_split else "") + ")", flush=True)
        if not train_eval_report(cfg, progress):
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
                        format=reader.pop("format"), reader=formats.ReaderOptions(**reader),
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
                 progress: bool = True) -> Path | None:
    """Table 3(a): every variant trained and evaluated with one schedule in
    `results/<variant>` (or, with `seeds`, a seed series `results/<variant>-seeds`), then
    `results/ablation.md`. None if a training was interrupted (rerun to resume)."""
    run_dirs = {v: results / v for v in paper.VARIANTS}
    for variant in variants:
        cfg = train.RunConfig(net=variant, schedule=schedule, data_dir=data_dir,
                              run_dir=run_dirs[variant], gpus=gpus)
        done = (run_series(cfg, seeds, progress=progress) if seeds
                else train_eval_report(cfg, progress))
        if not done:
            print(f"{variant}: training interrupted; rerun to resume")
            return None
    if seeds:
        run_dirs = {v: series_mod.series_of(d).run(1).path for v, d in run_dirs.items()}
    return report.write_ablation(run_dirs, results / report.ABLATION_PAGE, schedule)
