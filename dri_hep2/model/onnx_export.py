"""`make export`: a run's deploy net and snapshot as ONNX, checked against pycaffe on the spot.

    deploy.prototxt + snapshot ──onnx_convert (onnx_layers per type)──▶ model.onnx
        ──onnx_check: onnxruntime against pycaffe on the check cells──▶ passed, or nothing
        is written ──▶ RUN_DIR/export/ (onnx_model.ExportFolder): model.onnx, model.json,
        mean.npy, check.json

The converter is ours and small (docs/using.md has its table of layer types). Nothing is
written unless the ONNX model, run in onnxruntime, agrees with pycaffe on the check cells (the
run's test split by default): the fused probabilities within `ledger.EXPORT_MAX_ABS_DIFF` and
the same label for every cell (ASSUMPTIONS.md U5).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .. import atomic, ledger, paper
from ..data.cells import Transform
from ..engine import caffe_env
from ..experiment import evaluate
from ..experiment.run import RunDir, sha256, snapshot_iteration
from ..gpus import Gpus
from ..net import proto
from . import onnx_check
from .onnx_convert import convert, onnx_module
from .onnx_model import FORMAT, ExportFolder


def export(run_dir: str | Path, *, weights: str | Path | None = None,
           data_dir: str | Path | None = None, check_images: str | Path | None = None,
           check_limit: int | None = None, out: str | Path | None = None,
           batch_size: int = 64) -> dict:
    """`make export`: RUN_DIR/export/{model.onnx, model.json, mean.npy, check.json}.

    Returns model.json. Raises ExportCheckFailed, writing nothing, when onnxruntime and pycaffe
    disagree beyond ledger.EXPORT_MAX_ABS_DIFF or on any label.
    """
    run = RunDir(run_dir).require(RunDir.deploy, RunDir.train_val)
    weights = run.weights(weights)
    caffe = caffe_env.use_device(Gpus())        # the check runs on the CPU, as onnxruntime
    net_param = proto.read(run.deploy)
    net = caffe.Net(str(run.deploy), caffe.TEST, weights=str(weights))
    model = convert(net_param, net, name=run.read_manifest().get("net", net_param.name),
                    source=run.deploy)
    model_bytes = model.SerializeToString()
    transform = evaluate.test_transform(run.train_val, base_dir=run.path)
    stretch = run.input_stretch()
    x, source = onnx_check.check_inputs(run, data_dir, check_images, check_limit, transform,
                                        stretch)
    check = onnx_check.check(run, net, model_bytes, x, source, batch_size)
    mean = np.broadcast_to(np.asarray(transform.mean, np.float32),
                           (1, paper.INPUT_SIZE, paper.INPUT_SIZE)).astype(np.float32)
    info = _model_info(run, net, model, model_bytes, weights, transform, stretch, check)
    with atomic.staged_path(ExportFolder(out or run.export).path, is_dir=True) as tmp:
        staged = ExportFolder(tmp)
        atomic.write_bytes(staged.model, model_bytes)
        with atomic.staged_path(staged.mean) as mean_tmp:
            with open(mean_tmp, "wb") as f:
                np.save(f, mean)
        atomic.write_text(staged.check, json.dumps(check, indent=2) + "\n")
        atomic.write_text(staged.info, json.dumps(info, indent=2) + "\n")
    info["check"] = check
    return info


def _model_info(run: RunDir, net, model, model_bytes: bytes, weights: Path,
                transform: Transform, stretch: bool, check: dict) -> dict:
    """model.json: what a program needs around model.onnx (classes, input, preprocessing,
    outputs) and where it came from (weights, onnx versions, run, check)."""
    return {
        "format": FORMAT,
        "net": model.graph.name,
        "classes": list(run.class_names()),
        "input": {"name": "data", "shape": [1, paper.INPUT_SIZE, paper.INPUT_SIZE],
                  "layout": "NCHW", "dtype": "float32"},
        "preprocessing": {
            "decode": "8-bit grey (OpenCV IMREAD_GRAYSCALE: colour to grey, 16 bit to its "
                      "high byte)",
            "resize": f"{paper.INPUT_SIZE}x{paper.INPUT_SIZE}, INTER_AREA when shrinking, "
                      "INTER_LINEAR when enlarging (aspect not kept)",
            "stretch": stretch,
            "mean_file": ExportFolder.mean, "scale": float(transform.scale),
            "formula": "input = (grey - mean) * scale",
        },
        "outputs": {"branches": {str(k): v for k, v in evaluate.BRANCH_BLOBS["prob"].items()
                                 if v in net.blobs},
                    "fused": evaluate.FUSED_BLOB,
                    "fused_is": "the sum of the branch softmaxes (0..3); make predict writes "
                                "it divided by the number of branches"},
        "weights": {"file": weights.name, "sha256": sha256(weights),
                    "iteration": snapshot_iteration(weights) if "_iter_" in weights.name
                    else None},
        "onnx": {"opset": ledger.ONNX_OPSET, "ir_version": ledger.ONNX_IR_VERSION,
                 "onnx": onnx_module().__version__,
                 "file_sha256": hashlib.sha256(model_bytes).hexdigest()},
        "run": {"run_dir": str(run.path.resolve()), "manifest_sha256": sha256(run.manifest)},
        "check": {k: check[k] for k in ("cells", "fused_max_abs_diff", "labels_identical",
                                        "threshold", "source")},
    }
