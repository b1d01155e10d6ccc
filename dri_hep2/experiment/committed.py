"""Write the committed nets and solvers: prototxt/ and solver/ (`make nets`)."""
from __future__ import annotations

from pathlib import Path

from .. import atomic, paper, schedules
from ..data.split import i3a_val_size
from .run import RunDir
from ..net import build, proto, solver


def committed_paths(variant: str) -> dict[str, str]:
    """Where the committed files of a variant live, relative to the repository root."""
    return {"train_val": f"prototxt/{variant}_train_val.prototxt",
            "short_train_val": f"prototxt/{variant}_short_train_val.prototxt",
            "deploy": f"prototxt/{variant}_deploy.prototxt",
            "solver": f"solver/{variant}_solver.prototxt",
            "short_solver": f"solver/{variant}_short_solver.prototxt"}


def committed_files(variant: str, **net_options) -> dict[str, str]:
    """Relative path -> text of every file `make nets` writes for one variant.

    Paths inside the files are relative to the repository root, where `caffe` runs: data
    from `data/`, snapshots to `results/<variant>/snapshots/` (the short schedule's to
    `results/<variant>-short/snapshots/`, so the two never resume from each other). Each
    solver points at the train_val its schedule runs (the short one's BatchNorm window, T7).
    `net_options` (NetOptions fields) go to the builders; the committed files use none.
    """
    paths = committed_paths(variant)
    val_size = i3a_val_size()
    files = {paths["deploy"]: proto.to_text(build.deploy(variant, **net_options))}
    for schedule, prefix in (("paper", ""), ("short", "short_")):
        run = Path("results", variant + ("-short" if prefix else ""))
        net_path = paths[f"{prefix}train_val"]
        files[net_path] = proto.to_text(build.train_val(
            variant, data_dir="data",
            bn_moving_average=schedules.SCHEDULES[schedule].bn_moving_average, **net_options))
        files[paths[f"{prefix}solver"]] = proto.to_text(solver.solver(
            variant, schedule, net_path, str(run / RunDir(run).snapshot_prefix(variant)),
            val_size))
    return files


def generate(root: str | Path, variants=tuple(paper.VARIANTS), **net_options) -> list[Path]:
    """Write every variant's files under `root`; returns the paths written."""
    written = []
    for variant in variants:
        for rel, text in committed_files(variant, **net_options).items():
            written.append(atomic.write_text(Path(root) / rel, text))
    return written
