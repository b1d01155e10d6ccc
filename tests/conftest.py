"""Shared fixtures: small real LMDBs that Caffe's own Data layer reads."""
from __future__ import annotations

from pathlib import Path

import lmdb
import numpy as np
import pytest

from dri_hep2 import caffe_env, paper


@pytest.fixture(scope="session")
def caffe():
    """pycaffe in CPU mode (the build of `make setup`)."""
    return caffe_env.import_caffe()


def _write_lmdb(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from caffe.proto import caffe_pb2

    env = lmdb.open(str(path), map_size=64 << 20)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(zip(images, labels)):
            datum = caffe_pb2.Datum(channels=image.shape[0], height=image.shape[1],
                                    width=image.shape[2], data=image.tobytes(),
                                    label=int(label))
            txn.put(f"{i:08d}".encode(), datum.SerializeToString())
    env.close()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory, caffe) -> Path:
    """A DATA_DIR laid out as `make data` writes it: lmdb/{train,val,test} + mean.binaryproto.

    Twelve random 1x76x76 uint8 images per split, labels cycling through the six classes.
    """
    from caffe.proto import caffe_pb2

    root = tmp_path_factory.mktemp("tiny_data")
    rng = np.random.default_rng(paper.RANDOM_SEED)
    shape = (paper.INPUT_CHANNELS, paper.INPUT_SIZE, paper.INPUT_SIZE)
    (root / "lmdb").mkdir()
    for split in ("train", "val", "test"):
        images = rng.integers(0, 60, size=(12, *shape), dtype=np.uint8)
        labels = np.arange(12) % paper.NUM_CLASSES
        _write_lmdb(root / "lmdb" / split, images, labels)
    mean = caffe_pb2.BlobProto(num=1, channels=shape[0], height=shape[1], width=shape[2])
    mean.data.extend([30.0] * int(np.prod(shape)))
    (root / "lmdb" / "mean.binaryproto").write_bytes(mean.SerializeToString())
    return root
