"""pycaffe as the net builders use it: the module, its layer factories `L` and `P`, and
NetParameter / SolverParameter text in and out (files, temporary prototxts, loaded nets).

Importing this imports pycaffe but leaves Caffe's mode alone: the device is chosen by whoever
runs a net (`caffe_env.use_device`).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from google.protobuf import text_format

from ..engine.caffe_env import pycaffe

caffe = pycaffe()
L, P = caffe.layers, caffe.params
caffe_pb2 = caffe.proto.caffe_pb2


def to_text(message) -> str:
    """Prototxt text of a NetParameter or SolverParameter, as committed."""
    return text_format.MessageToString(message)


def read(path: str | Path, message_type=None):
    """Parse a prototxt file into a NetParameter (or the given message type)."""
    message = (message_type or caffe_pb2.NetParameter)()
    text_format.Merge(Path(path).read_text(), message)
    return message


@contextlib.contextmanager
def temporary(message) -> Iterator[Path]:
    """A prototxt file holding `message`, for Caffe's CLI or caffe.Net; removed afterwards."""
    fd, name = tempfile.mkstemp(suffix=".prototxt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(to_text(message))
        yield Path(name)
    finally:
        os.unlink(name)


def load(message, phase: str = "TEST", weights: str | Path | None = None):
    """A caffe.Net of a NetParameter (pycaffe reads nets only from files)."""
    with temporary(message) as path:
        if weights is None:
            return caffe.Net(str(path), getattr(caffe, phase))
        return caffe.Net(str(path), getattr(caffe, phase), weights=str(weights))
