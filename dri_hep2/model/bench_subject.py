"""What `make bench-predict` times: a run (deploy net + snapshot), its ONNX export, and cells.

Either a trained run (RUN_DIR) with its export, or, on a fresh machine where there is none, a
stand-in made in a scratch folder in a few seconds by the toolkit's own steps:

    synthetic.make_replica ──▶ build.build_dataset (no rotations: the LMDBs are only what
        train.prepare checks for) ──▶ train.prepare (DRI's deploy and train_val prototxts)
        ──random_snapshot──▶ snapshots/dri_iter_0.caffemodel ──onnx_export.export──▶ export/

The stand-in's weights are the fillers' (xavier convolutions, Caffe's seed), untrained. The
time of a forward pass does not depend on the values of the weights, with one exception the
stand-in avoids: BatchNorm's stored statistics are zero in a fresh net, which makes each
BatchNorm divide by sqrt(eps) and, 33 of them deep, floats overflow to inf/NaN (and a CPU is
slower on such values). `random_snapshot` therefore sets each BatchNorm's statistics to those
of its input on a few cells, layer by layer, as training's moving averages would.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ledger
from ..errors import UserError
from ..experiment.run import RunDir
from .inputs import load_views, read_inputs
from .onnx_model import ExportFolder

NET = "dri"
# Replica size: class_counts(0.02) gives 272 cells, enough for the default 256.
REPLICA_SCALE = 0.02
CALIBRATION_CELLS = 32


@dataclass
class Subject:
    run: RunDir
    export: Path                   # an export folder (model.onnx, model.json, mean.npy)
    weights: Path
    random_weights: bool           # the fresh stand-in, not a trained run
    replica: Path | None = None    # the stand-in's synthetic cells


def synthetic_cells(work: Path, progress: bool = False) -> Path:
    """A synthetic I3A replica in `work` (REPLICA_SCALE): the default cells to time."""
    from ..data import synthetic
    return synthetic.make_replica(work / "i3a", scale=REPLICA_SCALE, montage=False,
                                  progress=progress)


def fresh_subject(work: Path, progress: bool = False) -> Subject:
    """The stand-in run in `work`: synthetic replica, data folder, DRI prototxts, a snapshot
    of fresh weights and its checked ONNX export."""
    from ..data import build
    from ..experiment import train
    from .onnx_export import export
    replica = synthetic_cells(work, progress)
    # One view per cell (rotation step 360): the run's files need LMDBs, not augmentation.
    build.build_dataset(replica, work / "data", steps=(360,) * 6, progress=progress,
                        announce=lambda *_: None)
    cfg = train.RunConfig(net=NET, schedule="short", data_dir=work / "data",
                          run_dir=work / "run")
    run = train.prepare(cfg)
    run.write_manifest(cfg.data, [], {"net": NET, "classes": cfg.data.classes().manifest(),
                                      "bench": "fresh weights, untrained"})
    views = load_views(read_inputs(replica).cells[:CALIBRATION_CELLS], stretch=False,
                       skip_bad=False, progress=False)[1]
    weights = random_snapshot(run, views)
    export(run.path, out=work / "export")
    return Subject(run, work / "export", weights, random_weights=True, replica=replica)


def random_snapshot(run: RunDir, views: np.ndarray) -> Path:
    """snapshots/<net>_iter_0.caffemodel of the run's deploy net as its fillers draw it (seed
    ledger.RANDOM_SEED), BatchNorm statistics measured on `views` (see the module's doc)."""
    from ..engine import caffe_env
    from ..experiment import evaluate
    caffe = caffe_env.use_device()
    caffe.set_random_seed(ledger.RANDOM_SEED)
    net = caffe.Net(str(run.deploy), caffe.TEST)
    x = evaluate.test_transform(run.train_val, base_dir=run.path)(views[:, None])
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data[...] = x
    names = list(net._layer_names)
    done = 0
    for i, layer in enumerate(net.layers):
        if layer.type != "BatchNorm":
            continue
        if i > done:
            net._forward(done, i - 1)
        bottom = net.blobs[net.bottom_names[names[i]][0]].data
        stats = net.params[names[i]]
        stats[0].data[...] = bottom.mean(axis=(0, 2, 3))
        stats[1].data[...] = bottom.var(axis=(0, 2, 3))
        stats[2].data[...] = 1.0
        done = i
    path = run.snapshots / f"{NET}_iter_0.caffemodel"
    run.snapshots.mkdir(parents=True, exist_ok=True)
    net.save(str(path))
    return path


def run_subject(run_dir: Path, work: Path, weights: Path | None = None,
                check_images: Path | None = None) -> Subject:
    """A trained run: its export when that is of the weights timed, else one exported into
    `work` (checked on the run's test split, or on `check_images` when its data is gone)."""
    from .onnx_export import export
    run = RunDir(run_dir).require(RunDir.deploy, RunDir.train_val)
    weights = run.weights(weights)
    folder = ExportFolder(run.export)
    if folder.info.is_file() and folder.read_info()["weights"]["file"] == weights.name:
        return Subject(run, run.export, weights, random_weights=False)
    data = run.data_folder()
    has_test = data is not None and data.lmdb("test").is_dir()
    if not has_test and check_images is None:
        raise UserError(f"{run.path} has no export of {weights.name} and its data folder is "
                        f"gone: run 'make export RUN_DIR={run.path}' or give --images")
    export(run.path, weights=weights, out=work / "export",
           check_images=None if has_test else check_images, check_limit=64)
    return Subject(run, work / "export", weights, random_weights=False)


def bench_views(images: Path, count: int, *, split: str | None = None,
                run: RunDir | None = None, stretch: bool = False) -> tuple[np.ndarray, str]:
    """`count` 76x76 views of IMAGES, decoded as make predict decodes them (repeated in order
    when there are fewer cells), and a description of where they came from."""
    if count < 1:
        raise UserError(f"--cells {count}: give a positive number of cells")
    inputs = read_inputs(images, split=split, data=run.data_folder() if run else None)
    _, views, _ = load_views(inputs.cells, stretch=stretch, skip_bad=False, progress=False)
    if not len(views):
        raise UserError(f"IMAGES={images}: no cells")
    where = f"{images}" + (f" ({split} split)" if split else "")
    if len(views) < count:
        where += f", {len(views)} cells repeated"
    return np.resize(views, (count, *views.shape[1:])), where
