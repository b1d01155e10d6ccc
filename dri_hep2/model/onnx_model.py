"""A DRI exported to ONNX (`make export`), run with onnxruntime: no Caffe anywhere.

An export folder (RUN_DIR/export, or the same files unpacked from a package) holds

    model.onnx    the deploy net: input `data` (N x 1 x 76 x 76 float32, already transformed),
                  outputs `loss1/prob`, `loss2/prob`, `loss3/prob` and their sum `prob`
    model.json    what a user needs around it: class order, input size, preprocessing (mean
                  file, scale, stretch), output names, weights and the check against Caffe
    mean.npy      the training mean image (1 x 76 x 76 float32) the input is centred with
    check.json    the export's own check against pycaffe (dri_hep2.model.onnx_check)

This module imports neither pycaffe nor anything that does (test_predict checks it), so
`make predict BACKEND=onnx` runs where only onnxruntime is installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.cells import Transform
from ..errors import UserError
from ..folders import Folder, member

FORMAT = 1          # model.json's format; bump when its keys change meaning


class ExportFolder(Folder):
    model = member("model.onnx")
    info = member("model.json")
    mean = member("mean.npy")
    check = member("check.json")

    def require(self) -> "ExportFolder":
        missing = [p for p in (self.model, self.info, self.mean) if not p.is_file()]
        if missing:
            raise UserError(f"{missing[0]} missing: export the run first ('make export "
                            f"RUN_DIR=<run folder>'), or give the folder of an unpacked package")
        return self

    def read_info(self) -> dict:
        return json.loads(self.info.read_text())


def onnxruntime():
    """The onnxruntime module; a UserError that says how to install it when it is missing."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise UserError(f"onnxruntime does not import ({exc}): run 'make setup' (it installs "
                        "the pinned 'onnx' extra of pyproject.toml)") from exc
    return ort


def session(model: bytes | str | Path, threads: int | None = None):
    """An onnxruntime CPU session of a model file or serialised model."""
    ort = onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3      # warnings about unused initializers are not ours
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, sess_options=options,
                                providers=["CPUExecutionProvider"])


class OnnxModel:
    """The exported net with its preprocessing, as `make predict BACKEND=onnx` runs it."""

    backend = "onnx"

    def __init__(self, folder: str | Path, threads: int | None = None):
        self.folder = ExportFolder(folder).require()
        self.info = self.folder.read_info()
        if self.info.get("format") != FORMAT:
            raise UserError(f"{self.folder.info}: model.json format {self.info.get('format')} "
                            f"is not {FORMAT}: export the run again with this toolkit")
        pre = self.info["preprocessing"]
        self.classes = tuple(self.info["classes"])
        self.stretch = bool(pre["stretch"])
        self.transform = Transform(mean=np.load(self.folder.path / pre["mean_file"]),
                                   scale=float(pre["scale"]))
        self.branch_outputs = {int(k): v for k, v in self.info["outputs"]["branches"].items()}
        self.weights = self.info["weights"]["file"]
        self.session = session(self.folder.model, threads)
        self.input_name = self.info["input"]["name"]

    def probabilities(self, views: np.ndarray) -> dict[int, np.ndarray]:
        """Per-branch softmax outputs of one batch of (N, 76, 76) uint8 views."""
        x = self.transform(views[:, None])
        names = list(self.branch_outputs.values())
        out = self.session.run(names, {self.input_name: x})
        return dict(zip(self.branch_outputs, out))
