"""Caffe LMDBs: Datum encoding, seeded key order, an atomic writer sized from the data, and
the mean image as a BlobProto (what Caffe's Data layer and `mean_file` read).

Caffe's Data layer reads an LMDB in key order and never reshuffles, so the key order is the
training order: keys are `f"{rank:08d}_{name}"` with `rank` a seeded permutation, which makes
sorted order a seeded shuffle.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import lmdb
import numpy as np
from tqdm import tqdm

from .. import atomic
from ..engine.caffe_env import pycaffe

_PAGE = 4096            # LMDB's page size on Linux
_COMMIT_EVERY = 2048    # a write transaction holds at most 2^17 dirty pages: commit well before


def caffe_pb2():
    return pycaffe().proto.caffe_pb2


def encode_datum(img: np.ndarray, label: int) -> bytes:
    """A (H, W) or (C, H, W) uint8 array and its label as a serialised Caffe Datum."""
    arr = img[None] if img.ndim == 2 else img
    if arr.dtype != np.uint8:
        raise TypeError(f"Datum pixels must be uint8, got {arr.dtype}")
    prefix, suffix = datum_framing(arr.shape, label)
    return prefix + np.ascontiguousarray(arr).tobytes() + suffix


def datum_framing(shape: tuple[int, int, int], label: int) -> tuple[bytes, bytes]:
    """The bytes before and after the pixels of a serialised Datum of this (C, H, W) and label.

    Building a protobuf object per image cost ~140 us, several times the augmentation itself;
    the wire format of Datum(channels, height, width, data, label) is fixed, so it is written
    directly: fields in number order, each a tag then a varint (data: its length, then bytes),
    exactly what `caffe_pb2.Datum(...).SerializeToString()` gives (tests check byte for byte).
    """
    channels, height, width = (int(n) for n in shape)
    prefix = b"".join(_tag(field, 0) + _varint(value)
                      for field, value in ((1, channels), (2, height), (3, width)))
    prefix += _tag(4, 2) + _varint(channels * height * width)
    return prefix, _tag(5, 0) + _varint(int(label))


def _tag(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _varint(value: int) -> bytes:
    # int32 fields: a negative value goes on the wire as its 64-bit two's complement
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_datum(value: bytes) -> tuple[np.ndarray, int]:
    """(C, H, W) uint8 array and label of a serialised Datum."""
    datum = caffe_pb2().Datum.FromString(value)
    arr = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
    return arr, datum.label


def shuffled_keys(names: list[str], seed: int | list[int]) -> list[bytes]:
    """Keys for `names` whose sorted order is a seeded shuffle of them."""
    ranks = np.random.default_rng(seed).permutation(len(names))
    return [f"{rank:08d}_{name}".encode() for rank, name in zip(ranks, names)]


def key_name(key: bytes) -> str:
    """The name a key of `shuffled_keys` was made for (a cell ID, or ID_rANGLE); a key of
    another writer stands for itself."""
    rank, sep, name = key.decode().partition("_")
    return name if sep else rank


def map_size(count: int, value_size: int, key_size: int = 32) -> int:
    """Bytes of LMDB map for `count` values of `value_size`: overflow pages for large values,
    leaves at half fill (random insertion order), plus a margin; a multiple of the page."""
    if value_size + key_size > _PAGE // 2:
        per_value = math.ceil((value_size + 16) / _PAGE) * _PAGE + 2 * (key_size + 24)
    else:
        per_value = 2 * (value_size + key_size + 24)
    size = int(count * per_value * 1.1) + 16 * 2 ** 20
    return math.ceil(size / _PAGE) * _PAGE


def write_lmdb(path: str | Path, entries: Iterable[tuple[bytes, bytes]], *, count: int,
               value_size: int, desc: str | None = None, append: bool = False) -> Path:
    """Write `count` (key, value) pairs to a new LMDB folder at `path`, atomically.

    The LMDB is built in a temporary sibling and renamed into place only when complete, so an
    interrupted run leaves the old LMDB (or none), never a partial one. `append`: the keys come
    strictly increasing, so LMDB appends to its last page instead of searching and splitting
    (several times faster); a key out of order is refused.
    """
    path = Path(path)
    written = 0
    with atomic.staged_path(path, is_dir=True) as tmp:
        env = lmdb.open(str(tmp), map_size=map_size(count, value_size), subdir=True,
                        meminit=False, sync=False, metasync=False)
        try:
            txn = env.begin(write=True)
            for key, value in tqdm(entries, total=count, desc=desc, unit="img",
                                   disable=desc is None, mininterval=1.0):
                if not txn.put(key, value, overwrite=False, append=append):
                    raise ValueError(f"duplicate or out-of-order LMDB key {key!r}")
                written += 1
                if written % _COMMIT_EVERY == 0:
                    txn.commit()
                    txn = env.begin(write=True)
            txn.commit()
            env.sync(True)
        finally:
            env.close()
        if written != count:
            raise ValueError(f"{path}: expected {count} entries, got {written}")
    return path


def read_lmdb(path: str | Path) -> Iterable[tuple[bytes, bytes]]:
    """(key, value) pairs of an LMDB in key order, which is the order Caffe reads them in."""
    env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            yield from txn.cursor()
    finally:
        env.close()


def lmdb_entries(path: str | Path) -> int:
    """Number of records of an LMDB, from its statistics (nothing is read)."""
    env = lmdb.open(str(path), readonly=True, lock=False, subdir=True)
    try:
        return env.stat()["entries"]
    finally:
        env.close()


def mean_blob(mean: np.ndarray) -> bytes:
    """A (C, H, W) float mean image as the BlobProto `compute_image_mean` writes.

    Written directly, like the Datums (num, channels, height, width, then the packed float32
    data; tests check it byte for byte against protobuf): the build need not import pycaffe
    (~0.8 s) for this one message.
    """
    data = mean.astype("<f4").tobytes()
    head = b"".join(_tag(field, 0) + _varint(value) for field, value in
                    ((1, 1), (2, mean.shape[0]), (3, mean.shape[1]), (4, mean.shape[2])))
    return head + _tag(5, 2) + _varint(len(data)) + data


def read_mean(path: str | Path) -> np.ndarray:
    """The (C, H, W) mean image of a mean.binaryproto."""
    blob = caffe_pb2().BlobProto.FromString(Path(path).read_bytes())
    return np.asarray(blob.data, np.float32).reshape(blob.channels, blob.height, blob.width)
