"""`make export`: a run's deploy net and snapshot as ONNX, checked against pycaffe on the spot.

The converter is ours and small: it knows exactly the layer types the four variants use and
gives each Caffe's own semantics (docs/using.md has the table):

    Input          graph input `data`, batch dimension left free
    Convolution    Conv (pad, stride, dilation, group, bias)
    BatchNorm      BatchNormalization with the stored statistics divided by Caffe's scale
      (+ Scale)    factor (blobs[2]) and BatchNorm's eps; a Scale that alone reads the
                   BatchNorm's output is folded into it (gamma, beta)
    Scale          Mul (+ Add) per channel, where no BatchNorm precedes it
    PReLU          PRelu with one slope per channel (or one shared)
    ReLU           Relu / LeakyRelu
    Pooling        MaxPool / AveragePool with Caffe's output size (ceil rounding by default):
                   explicit end padding, max ignoring padding, average dividing by the window
                   clipped to input + pad as Caffe does; global pooling as GlobalMax/AveragePool
    Slice          Split with the slice points as sizes
    Eltwise        Sum (any number of inputs, coefficients as Mul), Mul, Max
    Concat         Concat
    InnerProduct   Flatten from its axis + Gemm (transposed weights unless `transpose`)
    Dropout        nothing: identity at test time
    Softmax        Softmax over Caffe's axis

Any other type is refused by name. Caffe's in-place layers (Scale and PReLU write into their
BatchNorm's blob) become new tensor names; the outputs keep Caffe's blob names.

Nothing is written unless the ONNX model, run in onnxruntime, agrees with pycaffe on the
check cells (the run's test split by default): the fused probabilities within
`ledger.EXPORT_MAX_ABS_DIFF` and the same label for every cell (ASSUMPTIONS.md U5).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .. import atomic, ledger, paper
from ..engine import caffe_env
from ..experiment import evaluate
from ..gpus import Gpus
from ..data.folder import DataFolder
from ..errors import UserError
from ..net import proto
from .onnx_model import FORMAT, ExportFolder, onnxruntime, session
from ..experiment.run import RunDir, snapshot_iteration

SUPPORTED = ("Input", "Convolution", "BatchNorm", "Scale", "PReLU", "ReLU", "Pooling", "Slice",
             "Eltwise", "Concat", "InnerProduct", "Dropout", "Softmax")


class UnsupportedLayer(UserError):
    """A layer type the converter does not know."""


class ExportCheckFailed(UserError):
    """onnxruntime and pycaffe disagree on the check cells: nothing was written."""


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise UserError(f"onnx does not import ({exc}): run 'make setup' (it installs the "
                        "pinned 'onnx' extra of pyproject.toml)") from exc
    return onnx


def _in_test_phase(layer) -> bool:
    """Caffe's StateRule for the TEST phase (phase only: deploy nets use nothing else)."""
    test = proto.caffe.TEST
    if layer.include:
        return any(r.phase == test for r in layer.include if r.HasField("phase"))
    return not any(r.HasField("phase") and r.phase == test for r in layer.exclude)


def _pair(values, h: int, w: int, default: int) -> tuple[int, int]:
    """Caffe's kernel/stride/pad: `*_h`/`*_w` if set, else one or two repeated values."""
    if h or w:
        return int(h), int(w)
    values = list(values)
    if not values:
        return default, default
    return (int(values[0]), int(values[-1]))


class _Graph:
    """ONNX nodes and initializers in the making, with Caffe's blob names made single-assigned."""

    def __init__(self, onnx, net_param, net):
        self.onnx, self.net = onnx, net
        self.nodes, self.inits, self.inputs = [], [], []
        self.current: dict[str, str] = {}            # Caffe blob -> ONNX tensor holding it now
        layers = [lyr for lyr in net_param.layer if _in_test_phase(lyr)]
        # Each blob's last writer gets the blob's own name (the outputs keep Caffe's names);
        # earlier writers (an in-place chain BatchNorm -> Scale -> PReLU) get `name#k`.
        self.writes = Counter(t for lyr in layers if lyr.type != "Dropout" for t in lyr.top)
        self.written: Counter = Counter()
        self.layers = layers
        self.readers = Counter()     # ONNX tensor -> how many layers read it (BN folding)

    def shape(self, blob: str) -> tuple[int, ...]:
        # Caffe allows a blob name to be rewritten in place only, so the shape is the blob's.
        return tuple(self.net.blobs[blob].data.shape)

    def fresh(self, blob: str) -> str:
        k = self.written[blob]
        self.written[blob] += 1
        name = blob if k == self.writes[blob] - 1 else f"{blob}#{k}"
        self.current[blob] = name
        return name

    def const(self, name: str, value: np.ndarray, dtype=np.float32) -> str:
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outputs, name=name, **attrs))


def convert(net_param, net, *, name: str | None = None, source: str | Path = "deploy",
            extra_outputs: tuple[str, ...] = ()):
    """An onnx.ModelProto of a deploy NetParameter and the loaded caffe.Net holding its weights.

    Layers outside the TEST phase are left out. `source` names the prototxt in messages;
    `extra_outputs` adds inner blobs as outputs (the tests compare every blob with Caffe's).
    """
    onnx = _onnx()
    from onnx import TensorProto, helper

    unknown = [(lyr.name, lyr.type) for lyr in net_param.layer
               if _in_test_phase(lyr) and lyr.type not in SUPPORTED]
    if unknown:
        raise UnsupportedLayer(
            f"{source}: layer {unknown[0][0]!r} has type {unknown[0][1]!r}, which the ONNX "
            f"converter does not know (it converts {', '.join(SUPPORTED)})")
    g = _Graph(onnx, net_param, net)
    # Legacy net-level inputs (`input:` + `input_shape`), as older deploy files declare them.
    for k, blob in enumerate(net_param.input):
        dims = (list(net_param.input_shape[k].dim) if k < len(net_param.input_shape)
                else list(net_param.input_dim[4 * k:4 * k + 4]))
        g.inputs.append(helper.make_tensor_value_info(g.fresh(blob), TensorProto.FLOAT,
                                                      ["batch", *dims[1:]]))
    # Who reads which tensor (decides whether a Scale can fold into its BatchNorm).
    versions = dict(g.current)
    for lyr in g.layers:
        for b in lyr.bottom:
            g.readers[versions.get(b, b)] += 1
        for t in lyr.top:
            versions[t] = f"{t}@{id(lyr)}"
    folded: set[str] = set()
    for index, lyr in enumerate(g.layers):
        if lyr.name in folded:
            continue
        _LAYERS[lyr.type](g, lyr, index, folded)
    outputs = [b for b in dict.fromkeys([*_requested_outputs(net), *extra_outputs])
               if b in g.current]
    for blob in outputs:
        if g.current[blob] != blob:       # written last by a Dropout alias: name it
            g.node("Identity", [g.current[blob]], [blob], f"{blob}/output")
    graph = helper.make_graph(
        g.nodes, name or net_param.name or "caffe", g.inputs,
        [helper.make_tensor_value_info(b, TensorProto.FLOAT,
                                       ["batch", *g.shape(b)[1:]]) for b in outputs],
        initializer=g.inits)
    model = helper.make_model(graph, producer_name="dri-hep2",
                              opset_imports=[helper.make_opsetid("", ledger.ONNX_OPSET)])
    model.ir_version = ledger.ONNX_IR_VERSION
    onnx.checker.check_model(model)
    return model


def _requested_outputs(net) -> list[str]:
    """The branch softmaxes and the fused sum, then any other output Caffe's net has."""
    wanted = [b for b in evaluate.BRANCH_BLOBS["prob"].values() if b in net.blobs]
    wanted += [b for b in [evaluate.FUSED_BLOB, *net.outputs] if b in net.blobs]
    return list(dict.fromkeys(wanted))


# --- one function per layer type --------------------------------------------------------------
def _input(g: _Graph, lyr, index, folded):
    from onnx import TensorProto, helper
    for k, top in enumerate(lyr.top):
        shapes = lyr.input_param.shape
        dims = list(shapes[min(k, len(shapes) - 1)].dim)
        g.inputs.append(helper.make_tensor_value_info(g.fresh(top), TensorProto.FLOAT,
                                                      ["batch", *dims[1:]]))


def _params(g: _Graph, lyr) -> list[np.ndarray]:
    return [p.data.astype(np.float64) for p in g.net.params[lyr.name]] \
        if lyr.name in g.net.params else []


def _convolution(g: _Graph, lyr, index, folded):
    cp = lyr.convolution_param
    kh, kw = _pair(cp.kernel_size, cp.kernel_h, cp.kernel_w, 1)
    sh, sw = _pair(cp.stride, cp.stride_h, cp.stride_w, 1)
    ph, pw = _pair(cp.pad, cp.pad_h, cp.pad_w, 0)
    dh, dw = _pair(cp.dilation, 0, 0, 1)
    blobs = _params(g, lyr)
    inputs = [g.current[lyr.bottom[0]], g.const(f"{lyr.name}/weights", blobs[0])]
    if cp.bias_term:
        inputs.append(g.const(f"{lyr.name}/bias", blobs[1]))
    g.node("Conv", inputs, [g.fresh(lyr.top[0])], lyr.name, kernel_shape=[kh, kw],
           strides=[sh, sw], pads=[ph, pw, ph, pw], dilations=[dh, dw], group=int(cp.group))


def _batch_norm_stats(g: _Graph, lyr) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean and variance as Caffe's BatchNorm uses them at test time: the stored sums divided
    by the stored scale factor (blobs[2]; 0 means no statistics: Caffe then uses 0)."""
    bp = lyr.batch_norm_param
    if bp.HasField("use_global_stats") and not bp.use_global_stats:
        raise UnsupportedLayer(f"layer {lyr.name!r}: BatchNorm with use_global_stats: false "
                               "normalises with each batch's own statistics, which a "
                               "deployed model cannot reproduce")
    mean, var, factor = _params(g, lyr)
    scale = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    return mean * scale, var * scale, float(bp.eps)


def _batch_norm(g: _Graph, lyr, index, folded):
    mean, var, eps = _batch_norm_stats(g, lyr)
    gamma, beta, top = np.ones_like(mean), np.zeros_like(mean), lyr.top[0]
    # Fold the Scale that reads this BatchNorm's output when it is its only reader.
    nxt = next((s for s in g.layers[index + 1:] if lyr.top[0] in s.bottom), None)
    if (nxt is not None and nxt.type == "Scale" and len(nxt.bottom) == 1
            and g.readers[f"{lyr.top[0]}@{id(lyr)}"] == 1 and _scale_is_per_channel(g, nxt)):
        blobs = _params(g, nxt)
        gamma = blobs[0]
        beta = blobs[1] if nxt.scale_param.bias_term else beta
        top = nxt.top[0]
        folded.add(nxt.name)
    name = lyr.name if top == lyr.top[0] else f"{lyr.name}+{nxt.name}"
    g.node("BatchNormalization",
           [g.current[lyr.bottom[0]], g.const(f"{name}/gamma", gamma),
            g.const(f"{name}/beta", beta), g.const(f"{name}/mean", mean),
            g.const(f"{name}/var", var)],
           [g.fresh(top)], name, epsilon=eps)


def _scale_is_per_channel(g: _Graph, lyr) -> bool:
    sp = lyr.scale_param
    return sp.axis == 1 and sp.num_axes == 1


def _channel_shape(g: _Graph, blob: str, values: np.ndarray) -> np.ndarray:
    """Per-channel values shaped to broadcast against an N x C x ... blob."""
    rank = len(g.shape(blob))
    return values.reshape(values.shape[0], *([1] * (rank - 2)))


def _scale(g: _Graph, lyr, index, folded):
    if len(lyr.bottom) != 1 or not _scale_is_per_channel(g, lyr):
        raise UnsupportedLayer(f"layer {lyr.name!r}: only a per-channel Scale (axis 1, "
                               "learned factors) is converted")
    blobs = _params(g, lyr)
    x = g.current[lyr.bottom[0]]
    gamma = g.const(f"{lyr.name}/gamma", _channel_shape(g, lyr.bottom[0], blobs[0]))
    if lyr.scale_param.bias_term:
        scaled = f"{lyr.name}/scaled"
        g.node("Mul", [x, gamma], [scaled], f"{lyr.name}/mul")
        beta = g.const(f"{lyr.name}/beta", _channel_shape(g, lyr.bottom[0], blobs[1]))
        g.node("Add", [scaled, beta], [g.fresh(lyr.top[0])], lyr.name)
    else:
        g.node("Mul", [x, gamma], [g.fresh(lyr.top[0])], lyr.name)


def _prelu(g: _Graph, lyr, index, folded):
    slope = _params(g, lyr)[0]
    if slope.size > 1:
        slope = _channel_shape(g, lyr.bottom[0], slope)
    g.node("PRelu", [g.current[lyr.bottom[0]], g.const(f"{lyr.name}/slope", slope)],
           [g.fresh(lyr.top[0])], lyr.name)


def _relu(g: _Graph, lyr, index, folded):
    alpha = float(lyr.relu_param.negative_slope)
    x = [g.current[lyr.bottom[0]]]
    if alpha:
        g.node("LeakyRelu", x, [g.fresh(lyr.top[0])], lyr.name, alpha=alpha)
    else:
        g.node("Relu", x, [g.fresh(lyr.top[0])], lyr.name)


def _pooling(g: _Graph, lyr, index, folded):
    pp = lyr.pooling_param
    P = proto.caffe_pb2.PoolingParameter
    if pp.pool not in (P.MAX, P.AVE):
        raise UnsupportedLayer(f"layer {lyr.name!r}: only MAX and AVE pooling are converted")
    x, top = g.current[lyr.bottom[0]], lyr.top[0]
    if pp.global_pooling:
        op = "GlobalMaxPool" if pp.pool == P.MAX else "GlobalAveragePool"
        g.node(op, [x], [g.fresh(top)], lyr.name)
        return
    kh, kw = _pair([pp.kernel_size] if pp.HasField("kernel_size") else [], pp.kernel_h,
                   pp.kernel_w, 1)
    sh, sw = _pair([pp.stride] if pp.HasField("stride") else [], pp.stride_h, pp.stride_w, 1)
    ph, pw = _pair([pp.pad] if pp.HasField("pad") else [], pp.pad_h, pp.pad_w, 0)
    _, _, h, w = g.shape(lyr.bottom[0])
    # Caffe's own output size (ceil or floor rounding, its clipping of a last window that
    # would start in the padding), read from the net it built.
    _, _, oh, ow = g.shape(top)
    if pp.pool == P.MAX:
        # Windows reaching past the input end are clipped by Caffe; ONNX ignores padded
        # elements in a max, so end padding that gives exactly Caffe's count is the same.
        ends = [max(0, (oh - 1) * sh + kh - h - ph), max(0, (ow - 1) * sw + kw - w - pw)]
        g.node("MaxPool", [x], [g.fresh(top)], lyr.name, kernel_shape=[kh, kw],
               strides=[sh, sw], pads=[ph, pw, *ends])
        return
    # Caffe's average divides by the window clipped to input + pad (pad counted as zeros,
    # the overflow of the rounding not counted): zero-pad explicitly, then pool with extra
    # end padding that onnxruntime leaves out of the count (count_include_pad=0).
    if ph or pw:
        padded = f"{lyr.name}/padded"
        g.node("Pad", [x, g.const(f"{lyr.name}/pads", [0, 0, ph, pw, 0, 0, ph, pw], np.int64)],
               [padded], f"{lyr.name}/pad")
        x, h, w = padded, h + 2 * ph, w + 2 * pw
    ends = [max(0, (oh - 1) * sh + kh - h), max(0, (ow - 1) * sw + kw - w)]
    g.node("AveragePool", [x], [g.fresh(top)], lyr.name, kernel_shape=[kh, kw],
           strides=[sh, sw], pads=[0, 0, *ends], count_include_pad=0)


def _slice(g: _Graph, lyr, index, folded):
    sp = lyr.slice_param
    axis = int(sp.slice_dim) if sp.HasField("slice_dim") else int(sp.axis)
    shape = g.shape(lyr.bottom[0])
    axis = axis % len(shape)
    points = list(sp.slice_point)
    if points:
        bounds = [0, *points, shape[axis]]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    else:
        sizes = [shape[axis] // len(lyr.top)] * len(lyr.top)
    g.node("Split", [g.current[lyr.bottom[0]], g.const(f"{lyr.name}/sizes", sizes, np.int64)],
           [g.fresh(t) for t in lyr.top], lyr.name, axis=axis)


def _eltwise(g: _Graph, lyr, index, folded):
    ep = lyr.eltwise_param
    E = proto.caffe_pb2.EltwiseParameter
    xs = [g.current[b] for b in lyr.bottom]
    top = lyr.top[0]
    if ep.operation == E.SUM:
        coeffs = list(ep.coeff) or [1.0] * len(xs)
        terms = []
        for k, (x, c) in enumerate(zip(xs, coeffs)):
            if c == 1.0:
                terms.append(x)
            else:
                terms.append(f"{lyr.name}/term{k}")
                g.node("Mul", [x, g.const(f"{lyr.name}/coeff{k}", c)], [terms[-1]],
                       f"{lyr.name}/coeff{k}")
        g.node("Sum", terms, [g.fresh(top)], lyr.name)
    elif ep.operation == E.MAX:
        g.node("Max", xs, [g.fresh(top)], lyr.name)
    else:     # PROD: a chain of binary products
        acc = xs[0]
        for k, x in enumerate(xs[1:], 1):
            out = g.fresh(top) if k == len(xs) - 1 else f"{lyr.name}/prod{k}"
            g.node("Mul", [acc, x], [out], f"{lyr.name}/mul{k}")
            acc = out


def _concat(g: _Graph, lyr, index, folded):
    cp = lyr.concat_param
    axis = int(cp.concat_dim) if cp.HasField("concat_dim") else int(cp.axis)
    g.node("Concat", [g.current[b] for b in lyr.bottom], [g.fresh(lyr.top[0])], lyr.name,
           axis=axis)


def _inner_product(g: _Graph, lyr, index, folded):
    ip = lyr.inner_product_param
    blobs = _params(g, lyr)
    flat = f"{lyr.name}/flat"
    # Caffe flattens everything from `axis` on in C order, as ONNX's Flatten does.
    g.node("Flatten", [g.current[lyr.bottom[0]]], [flat], f"{lyr.name}/flatten",
           axis=int(ip.axis))
    inputs = [flat, g.const(f"{lyr.name}/weights", blobs[0])]
    if ip.bias_term:
        inputs.append(g.const(f"{lyr.name}/bias", blobs[1]))
    g.node("Gemm", inputs, [g.fresh(lyr.top[0])], lyr.name, transB=0 if ip.transpose else 1)


def _dropout(g: _Graph, lyr, index, folded):
    # Identity at test time (Caffe scales during training): the top is the bottom.
    g.current[lyr.top[0]] = g.current[lyr.bottom[0]]


def _softmax(g: _Graph, lyr, index, folded):
    g.node("Softmax", [g.current[lyr.bottom[0]]], [g.fresh(lyr.top[0])], lyr.name,
           axis=int(lyr.softmax_param.axis))


_LAYERS = {"Input": _input, "Convolution": _convolution, "BatchNorm": _batch_norm,
           "Scale": _scale, "PReLU": _prelu, "ReLU": _relu, "Pooling": _pooling,
           "Slice": _slice, "Eltwise": _eltwise, "Concat": _concat,
           "InnerProduct": _inner_product, "Dropout": _dropout, "Softmax": _softmax}
assert set(_LAYERS) == set(SUPPORTED)


# --- the check --------------------------------------------------------------------------------
def compare(net, model_bytes: bytes, inputs: np.ndarray, batch_size: int = 64) -> dict:
    """pycaffe and onnxruntime on the same transformed inputs (N x 1 x 76 x 76 float32): the
    largest differences, whether every fused label agrees, and seconds per cell of each."""
    sess = session(model_bytes)
    branches = [b for b in evaluate.BRANCH_BLOBS["prob"].values() if b in net.blobs]
    caffe_out = {b: [] for b in branches}
    ort_out = {b: [] for b in branches}
    t_caffe = t_ort = 0.0
    for start in range(0, len(inputs), batch_size):
        x = np.ascontiguousarray(inputs[start:start + batch_size], np.float32)
        t = time.perf_counter()
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        net.forward()
        t_caffe += time.perf_counter() - t
        for b in branches:
            caffe_out[b].append(net.blobs[b].data.copy())
        t = time.perf_counter()
        got = sess.run(branches, {"data": x})
        t_ort += time.perf_counter() - t
        for b, v in zip(branches, got):
            ort_out[b].append(v)
    caffe_p = {b: np.concatenate(v).astype(np.float64) for b, v in caffe_out.items()}
    ort_p = {b: np.concatenate(v).astype(np.float64) for b, v in ort_out.items()}
    fused_c = sum(caffe_p.values()) / len(branches)
    fused_o = sum(ort_p.values()) / len(branches)
    n = len(inputs)
    return {
        "cells": n,
        "fused_max_abs_diff": float(np.abs(fused_c - fused_o).max()),
        "branch_max_abs_diff": {b: float(np.abs(caffe_p[b] - ort_p[b]).max()) for b in branches},
        "labels_identical": bool(np.array_equal(fused_c.argmax(1), fused_o.argmax(1))),
        "labels_differing": int((fused_c.argmax(1) != fused_o.argmax(1)).sum()),
        "seconds_per_cell": {"caffe": t_caffe / n, "onnxruntime": t_ort / n},
        "batch_size": batch_size,
    }


def _check_inputs(run: RunDir, data_dir, check_images, limit: int | None, transform,
                  stretch: bool) -> tuple[np.ndarray, str]:
    """The cells the export is checked on: given images, else the run's test split."""
    if check_images:
        from .inputs import load_views, read_inputs
        inputs = read_inputs(check_images)
        _, views, _ = load_views(inputs.cells, stretch=stretch, skip_bad=False,
                                 progress=False)
        views, source = views[:, None], str(check_images)
    else:
        data = DataFolder(data_dir) if data_dir else run.data_folder()
        if data is None:
            raise UserError(f"the data folder of {run.path} is not there to check the export "
                            "on: give DATA_DIR=<data folder> or CHECK_IMAGES=<images>")
        data.require("test", mean=False)
        views, _, _ = evaluate.read_lmdb(data.lmdb("test"))
        source = str(data.lmdb("test"))
    if limit:
        views = views[:limit]
    return transform(views), source


def export(run_dir: str | Path, *, weights: str | Path | None = None,
           data_dir: str | Path | None = None, check_images: str | Path | None = None,
           check_limit: int | None = None, out: str | Path | None = None,
           batch_size: int = 64) -> dict:
    """`make export`: RUN_DIR/export/{model.onnx, model.json, mean.npy, check.json}.

    Returns model.json. Raises ExportCheckFailed, writing nothing, when onnxruntime and pycaffe
    disagree beyond ledger.EXPORT_MAX_ABS_DIFF or on any label.
    """
    import onnx
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
    x, source = _check_inputs(run, data_dir, check_images, check_limit, transform, stretch)
    check = compare(net, model_bytes, x, batch_size)
    check.update({"source": source, "threshold": ledger.EXPORT_MAX_ABS_DIFF,
                  "onnxruntime": onnxruntime().__version__})
    check["passed"] = (check["fused_max_abs_diff"] < ledger.EXPORT_MAX_ABS_DIFF
                       and check["labels_identical"])
    if not check["passed"]:
        raise ExportCheckFailed(
            f"the ONNX export of {run.deploy} disagrees with pycaffe on {check['cells']} cells "
            f"of {source}: fused probabilities differ by up to {check['fused_max_abs_diff']:.3g}"
            f" (limit {ledger.EXPORT_MAX_ABS_DIFF:g}), {check['labels_differing']} label(s) "
            "differ; nothing was written")
    mean = np.broadcast_to(np.asarray(transform.mean, np.float32),
                           (1, paper.INPUT_SIZE, paper.INPUT_SIZE)).astype(np.float32)
    folder = ExportFolder(out or run.export)
    info = {
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
        "weights": {"file": weights.name, "sha256": _sha256(weights),
                    "iteration": snapshot_iteration(weights) if "_iter_" in weights.name
                    else None},
        "onnx": {"opset": ledger.ONNX_OPSET, "ir_version": ledger.ONNX_IR_VERSION,
                 "onnx": onnx.__version__, "file_sha256": hashlib.sha256(model_bytes).hexdigest()},
        "run": {"run_dir": str(run.path.resolve()),
                "manifest_sha256": _sha256(run.manifest) if run.manifest.is_file() else None},
        "check": {k: check[k] for k in ("cells", "fused_max_abs_diff", "labels_identical",
                                        "threshold", "source")},
    }
    with atomic.staged_path(folder.path, is_dir=True) as tmp:
        staged = ExportFolder(tmp)
        atomic.write_bytes(staged.model, model_bytes)
        with atomic.staged_path(staged.mean) as mean_tmp:
            with open(mean_tmp, "wb") as f:
                np.save(f, mean)
        atomic.write_text(staged.check, json.dumps(check, indent=2) + "\n")
        atomic.write_text(staged.info, json.dumps(info, indent=2) + "\n")
    info["check"] = check
    return info


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
