"""A grid of runs as one description (issue 18): the plan that `make sweep`, `make ablation`,
`make seeds` and `make cv` all execute.

A `Grid` names the axes: nets (any of Table 3(a)'s variants, with one set of NET_ARGS), seeds
(seed-1 ... seed-N, Caffe's random_seed = ledger.RANDOM_SEED + k - 1 as dri_hep2.series), a
split protocol with its folds (kfold / loso: one data folder per fold, built from the input
folder; cell / specimen: the one data folder of `make data`), a schedule and its overrides
(MAX_ITER, SNAPSHOT). `Grid.cells(...)` expands it into `Cell`s, one run folder each: the run
folder path comes from the caller's layout (a sweep folder's `runs/<name>`, or the folders
that ablation, seeds and cv have always used), so the same plan drives every experiment.

A cell's `fingerprint` hashes everything that decides its weights (net, knobs, seed, schedule,
overrides, the data folder's manifest): a run whose manifest carries the same fingerprint and
whose eval.json is of its final snapshot is done, and is never trained again.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .. import ledger, paper, schedules
from ..data import split
from ..data.folder import DataFolder
from ..errors import UserError
from ..gpus import Gpus
from ..net.options import NetOptions
from . import train
from .run import sha256


@dataclass(frozen=True)
class Cell:
    """One run of a grid: where it trains, on what, with which seed; `index` is its place in
    the plan (a Slurm array task's SLURM_ARRAY_TASK_ID)."""
    index: int
    net: str
    seed_k: int                 # seed-K of the series: random_seed = base seed + K - 1
    fold: int | None            # fold K of a kfold / loso protocol; None: the one split
    run_dir: Path
    data_dir: Path
    config: train.RunConfig = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        """Stable and unique within a plan: `dri-seed1`, `sri-seed2-fold3`."""
        return f"{self.net}-seed{self.seed_k}" + (f"-fold{self.fold}" if self.fold else "")

    def fingerprint(self) -> str:
        """What decides this run's weights, hashed; the data by its manifest's content."""
        cfg = self.config
        facts = {"net": cfg.net, "schedule": cfg.schedule, "seed": cfg.seed,
                 "net_options": cfg.net_options.changed(), "overrides": cfg.overrides(),
                 "data manifest.json": sha256(DataFolder(self.data_dir).manifest)}
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        """The cell as plan.json records it."""
        return {"index": self.index, "name": self.name, "net": self.net, "seed_k": self.seed_k,
                "seed": self.config.seed, "fold": self.fold, "run_dir": str(self.run_dir),
                "data_dir": str(self.data_dir)}


# A layout: (net, seed-K, fold or None) -> the run folder of that cell.
Layout = Callable[[str, int, "int | None"], Path]


@dataclass(frozen=True)
class Grid:
    """make's NETS, SEEDS, PROTOCOL, K, SCHEDULE, MAX_ITER, SNAPSHOT, NET_ARGS, GPU and the data
    (DATA_DIR for cell / specimen; the input folder I3A for kfold / loso)."""
    nets: tuple[str, ...] = ("dri",)
    seeds: int = 1
    protocol: str = "cell"
    folds: int | None = None        # K of kfold (None: ledger.CV_FOLDS); loso: its own count
    schedule: str = "paper"
    data_dir: Path = Path("data")   # cell / specimen: the built data folder
    source: Path | None = None      # kfold / loso: the input folder the folds are built from
    net_options: NetOptions = NetOptions()
    max_iter: int | None = None
    snapshot: int | None = None
    gpus: Gpus = Gpus()
    base_seed: int = ledger.RANDOM_SEED     # seed-1's random_seed (and the folds' split seed)

    def __post_init__(self):
        unknown = [n for n in self.nets if n not in paper.VARIANTS]
        if not self.nets or unknown:
            raise UserError(f"NETS={','.join(self.nets)}: give variants of Table 3(a), comma "
                            f"separated ({', '.join(paper.VARIANTS)})")
        if self.seeds < 1:
            raise UserError(f"SEEDS={self.seeds}: a grid needs at least one seed")
        if self.protocol not in split.PROTOCOLS:
            raise UserError(f"PROTOCOL={self.protocol}: one of {', '.join(split.PROTOCOLS)}")
        if self.folded and self.source is None:
            raise UserError(f"PROTOCOL={self.protocol} builds its folds from an input folder: "
                            "give I3A=<folder> (any layout of make data)")
        schedules.get(self.schedule)
        object.__setattr__(self, "nets", tuple(self.nets))
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @property
    def folded(self) -> bool:
        return self.protocol in split.FOLD_PROTOCOLS

    def describe(self) -> dict:
        """What makes this grid (plan.json): a sweep folder made with another is refused."""
        return {"nets": list(self.nets), "seeds": self.seeds, "protocol": self.protocol,
                "folds": self.folds, "schedule": self.schedule,
                "data_dir": None if self.folded else str(self.data_dir.resolve()),
                "source": str(Path(self.source).resolve()) if self.source else None,
                "net_options": self.net_options.changed(), "max_iter": self.max_iter,
                "snapshot": self.snapshot, "base_seed": self.base_seed}

    def seed_of(self, k: int) -> int:
        """Caffe's random_seed of seed-K (seed-1 is a plain `make train`'s, as series.seed_of)."""
        return self.base_seed + k - 1

    def run_config(self, net: str, seed_k: int, run_dir: Path, data_dir: Path) -> train.RunConfig:
        return train.RunConfig(net=net, schedule=self.schedule, data_dir=data_dir,
                               run_dir=run_dir, gpus=self.gpus, seed=self.seed_of(seed_k),
                               net_options=self.net_options, max_iter=self.max_iter,
                               snapshot=self.snapshot)

    def cells(self, layout: Layout, fold_data: dict[int, Path] | None = None,
              seed_data: Callable[[int], Path] | None = None) -> list[Cell]:
        """Every run, nets outermost, then seeds, then folds (a plan's stable order).
        `fold_data`: fold -> its data folder (folded grids); `seed_data`: seed-K -> its data
        folder, where each seed has its own split (make seeds VARY_SPLIT=1)."""
        if self.folded and not fold_data:
            raise ValueError("a folded grid's cells need the folds' data folders")
        out: list[Cell] = []
        for net in self.nets:
            for k in range(1, self.seeds + 1):
                for fold in (sorted(fold_data) if self.folded else [None]):
                    data = (fold_data[fold] if fold else
                            seed_data(k) if seed_data else self.data_dir)
                    run_dir = Path(layout(net, k, fold))
                    out.append(Cell(len(out), net, k, fold, run_dir, Path(data),
                                    self.run_config(net, k, run_dir, Path(data))))
        return out


def with_gpus(cells: list[Cell], gpus: Gpus) -> list[Cell]:
    """The same cells on other devices (the device is no part of a run's identity)."""
    return [replace(c, config=replace(c.config, gpus=gpus)) for c in cells]

