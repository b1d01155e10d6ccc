"""Write the committed nets and solvers: prototxt/ and solver/ (`make nets`)."""
from __future__ import annotations

from pathlib import Path

from .. import atomic
from . import build, solver


def committed_files(variant: str, **net_options) -> dict[str, str]:
    """Relative path -> text of every file `make nets` writes for one variant.

    Paths inside the files are relative to the repository root, where `caffe` runs: data
    from `data/`, snapshots to `results/<variant>/snapshots/`. `net_options` (shortcut,
    dri_2_3_1x1) go to the builders; the committed files use none.
    """
    train_val = f"prototxt/{variant}_train_val.prototxt"
    prefix = f"results/{variant}/snapshots/{variant}"
    val_size = solver.i3a_val_size()
    return {
        train_val: build.to_text(build.train_val(variant, data_dir="data", **net_options)),
        f"prototxt/{variant}_deploy.prototxt": build.to_text(build.deploy(variant, **net_options)),
        f"solver/{variant}_solver.prototxt":
            build.to_text(solver.solver(variant, "paper", train_val, prefix, val_size)),
        f"solver/{variant}_short_solver.prototxt":
            build.to_text(solver.solver(variant, "short", train_val, prefix, val_size)),
    }


def generate(root: str | Path, variants=build.VARIANTS, **net_options) -> list[Path]:
    """Write every variant's files under `root`; returns the paths written."""
    written = []
    for variant in variants:
        for rel, text in committed_files(variant, **net_options).items():
            written.append(atomic.write_text(Path(root) / rel, text))
    return written
