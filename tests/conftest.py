"""Shared fixtures: small real LMDBs that Caffe's own Data layer reads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dri_hep2.engine import caffe_env
from dri_hep2 import ledger, paper
from dri_hep2.data import lmdb_io


@pytest.fixture(scope="session")
def caffe():
    """pycaffe in CPU mode (the build of `make setup`)."""
    return caffe_env.use_device()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory, caffe) -> Path:
    """A DATA_DIR laid out as `make data` writes it: lmdb/{train,val,test} + mean.binaryproto.

    Twelve random 1x76x76 uint8 images per split, labels cycling through the six classes.
    """
    root = tmp_path_factory.mktemp("tiny_data")
    rng = np.random.default_rng(ledger.RANDOM_SEED)
    shape = (ledger.INPUT_CHANNELS, paper.INPUT_SIZE, paper.INPUT_SIZE)
    (root / "lmdb").mkdir()
    for split in ("train", "val", "test"):
        images = rng.integers(0, 60, size=(12, *shape), dtype=np.uint8)
        labels = np.arange(12) % paper.NUM_CLASSES
        # Through the toolkit's one LMDB writer; keys in label-cycling order.
        values = [lmdb_io.encode_datum(img, lab) for img, lab in zip(images, labels)]
        lmdb_io.write_lmdb(root / "lmdb" / split,
                           ((f"{i:08d}".encode(), v) for i, v in enumerate(values)),
                           count=len(values), value_size=len(values[0]))
    (root / "lmdb" / "mean.binaryproto").write_bytes(
        lmdb_io.mean_blob(np.full(shape, 30.0, np.float32)))
    return root


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, caffe):
    """A real DRI run on a tiny synthetic I3A replica, for the tools that use a trained model.

    The replica (scale 0.01: 136 cells, 28 test cells, specimen IDs in its CSV) goes through
    `make data`; DRI trains 4 iterations of the short schedule through `caffe train`, so the
    snapshot holds real BatchNorm statistics. The net is far from good; these tests need a real
    one. Returns (i3a folder, data folder, run folder).
    """
    import re
    from types import SimpleNamespace

    from dri_hep2.experiment import train
    from dri_hep2.data import build, synthetic
    from dri_hep2.data.folder import DataFolder

    root = tmp_path_factory.mktemp("small_run")
    i3a = synthetic.make_replica(root / "i3a", scale=0.01, progress=False, montage=False,
                                 workers=2)
    build.build_dataset(i3a, root / "data", progress=False, workers=2)
    cfg = train.RunConfig(net="dri", schedule="short", data_dir=root / "data",
                          run_dir=root / "run")
    run = train.prepare(cfg)
    run.solver.write_text(re.sub(r"max_iter: \d+", "max_iter: 4", run.solver.read_text()))
    session = train.run_caffe(run.path, data=DataFolder(root / "data"), progress=False)
    assert session.outcome == "finished" and session.last_iteration == 4
    return SimpleNamespace(i3a=i3a, data=root / "data", run=run.path)


@pytest.fixture(scope="session")
def sweep_data(tmp_path_factory, caffe) -> Path:
    """A data folder of `make data` on a synthetic I3A replica (scale 0.02: 272 cells), for the
    sweep tests (test_sweep, test_sweep_slurm)."""
    from dri_hep2.data import build, synthetic
    root = tmp_path_factory.mktemp("sweep_data")
    i3a = synthetic.make_replica(root / "i3a", scale=0.02, progress=False, montage=False,
                                 workers=2)
    build.build_dataset(i3a, root / "data", progress=False)
    return root / "data"


@pytest.fixture(scope="session")
def sweep_grid_args() -> list[str]:
    """tools/sweep.py's arguments of the sweep tests' 2 x 2 grid: shallow_inception and DRI x 2
    seeds, 12 iterations of the short schedule each, snapshots at 6 and 12."""
    return ["--nets", "shallow_inception,dri", "--seeds", "2", "--schedule", "short",
            "--max-iter", "12", "--snapshot", "6", "--no-progress"]


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory, sweep_data, sweep_grid_args) -> Path:
    """The 2 x 2 grid trained here (SCHEDULER=local, `tools/sweep.py run`), once per session:
    test_sweep checks it, test_sweep_slurm compares the Slurm executor's page with its page."""
    import importlib.util

    from dri_hep2 import cli
    from dri_hep2.folders import REPO_ROOT

    spec = importlib.util.spec_from_file_location("sweep_tool", REPO_ROOT / "tools" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("local_sweep") / "sweep"
    argv = ["run", "--sweep-dir", str(folder), "--data-dir", str(sweep_data), *sweep_grid_args]
    assert cli.run(module.main, argv) == 0
    return folder
