"""Write the committed nets and solvers: prototxt/ and solver/ (`make nets`)."""
from __future__ import annotations

from pathlib import Path

from .. import atomic, paper
from ..data.split import i3a_val_size
from ..run import RunDir
from . import build, proto, solver


def committed_paths(variant: str) -> dict[str, str]:
    """Where the committed files of a variant live, relative to the repository root."""
    return {"train_val": f"prototxt/{variant}_train_val.prototxt",
            "deploy": f"prototxt/{variant}_deploy.prototxt",
            "solver": f"solver/{variant}_solver.prototxt",
            "short_solver": f"solver/{variant}_short_solver.prototxt"}


def committed_files(variant: str, **net_options) -> dict[str, str]:
    """Relative path -> text of every file `make nets` writes for one variant.

    Paths inside the files are relative to the repository root, where `caffe` runs: data
    from `data/`, snapshots to `results/<variant>/snapshots/`. `net_options` (shortcut,
    dri_2_3_1x1) go to the builders; the committed files use none.
    """
    paths = committed_paths(variant)
    prefix = str(Path("results", variant, RunDir(variant).snapshot_prefix(variant)))
    val_size = i3a_val_size()
    return {
        paths["train_val"]: proto.to_text(build.train_val(variant, data_dir="data",
                                                          **net_options)),
        paths["deploy"]: proto.to_text(build.deploy(variant, **net_options)),
        paths["solver"]: proto.to_text(
            solver.solver(variant, "paper", paths["train_val"], prefix, val_size)),
        paths["short_solver"]: proto.to_text(
            solver.solver(variant, "short", paths["train_val"], prefix, val_size)),
    }


def generate(root: str | Path, variants=tuple(paper.VARIANTS), **net_options) -> list[Path]:
    """Write every variant's files under `root`; returns the paths written."""
    written = []
    for variant in variants:
        for rel, text in committed_files(variant, **net_options).items():
            written.append(atomic.write_text(Path(root) / rel, text))
    return written
