"""Shared fixtures: small real LMDBs that Caffe's own Data layer reads."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dri_hep2 import caffe_env, ledger, paper
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
