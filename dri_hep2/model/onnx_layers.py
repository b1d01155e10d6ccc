"""Caffe layers as ONNX nodes: one converter per layer type the four variants use, each with
Caffe's own semantics (docs/using.md has the table). `CONVERTERS` is the one list of the
types converted; any other type is refused by name (dri_hep2.model.onnx_convert).

Caffe's in-place layers (Scale and PReLU write into their BatchNorm's blob) become new tensor
names; the outputs keep Caffe's blob names. A Scale that alone reads a BatchNorm's output is
folded into it.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..errors import UserError
from ..net import proto


class UnsupportedLayer(UserError):
    """A layer type (or a setting of one) the converter does not know."""


def _pair(values, h: int, w: int, default: int) -> tuple[int, int]:
    """Caffe's kernel/stride/pad: `*_h`/`*_w` if set, else one or two repeated values."""
    if h or w:
        return int(h), int(w)
    values = list(values)
    if not values:
        return default, default
    return (int(values[0]), int(values[-1]))



class Graph:
    """ONNX nodes and initializers in the making, with Caffe's blob names made single-assigned.

    `layers` are the net's TEST-phase layers in order; `net` the loaded caffe.Net (weights,
    blob shapes)."""

    def __init__(self, onnx, layers: list, net):
        self.onnx, self.net, self.layers = onnx, net, layers
        self.nodes, self.inits, self.inputs = [], [], []
        self.current: dict[str, str] = {}            # Caffe blob -> ONNX tensor holding it now
        # Each blob's last writer gets the blob's own name (the outputs keep Caffe's names);
        # earlier writers (an in-place chain BatchNorm -> Scale -> PReLU) get `name#k`.
        self.writes = Counter(t for lyr in layers if lyr.type != "Dropout" for t in lyr.top)
        self.written: Counter = Counter()
        self.readers = Counter()     # ONNX tensor -> how many layers read it (BN folding)
        self.folded: set[str] = set()      # layers already converted into an earlier node
        self._position = {id(lyr): k for k, lyr in enumerate(layers)}

    def after(self, lyr) -> list:
        """The layers that follow `lyr`."""
        return self.layers[self._position[id(lyr)] + 1:]

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


# --- one function per layer type --------------------------------------------------------------
def _input(g: Graph, lyr):
    """Graph input `data`, batch dimension left free."""
    helper, TensorProto = g.onnx.helper, g.onnx.TensorProto
    for k, top in enumerate(lyr.top):
        shapes = lyr.input_param.shape
        dims = list(shapes[min(k, len(shapes) - 1)].dim)
        g.inputs.append(helper.make_tensor_value_info(g.fresh(top), TensorProto.FLOAT,
                                                      ["batch", *dims[1:]]))


def _params(g: Graph, lyr) -> list[np.ndarray]:
    return [p.data.astype(np.float64) for p in g.net.params[lyr.name]] \
        if lyr.name in g.net.params else []


def _convolution(g: Graph, lyr):
    """Conv (pad, stride, dilation, group, bias)."""
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


def _batch_norm_stats(g: Graph, lyr) -> tuple[np.ndarray, np.ndarray, float]:
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


def _batch_norm(g: Graph, lyr):
    """BatchNormalization with the stored statistics divided by Caffe's scale factor
    (blobs[2]) and BatchNorm's eps; a Scale that alone reads the output folds in (gamma,
    beta)."""
    mean, var, eps = _batch_norm_stats(g, lyr)
    gamma, beta, top = np.ones_like(mean), np.zeros_like(mean), lyr.top[0]
    # Fold the Scale that reads this BatchNorm's output when it is its only reader.
    nxt = next((s for s in g.after(lyr) if lyr.top[0] in s.bottom), None)
    if (nxt is not None and nxt.type == "Scale" and len(nxt.bottom) == 1
            and g.readers[f"{lyr.top[0]}@{id(lyr)}"] == 1 and _scale_is_per_channel(nxt)):
        blobs = _params(g, nxt)
        gamma = blobs[0]
        beta = blobs[1] if nxt.scale_param.bias_term else beta
        top = nxt.top[0]
        g.folded.add(nxt.name)
    name = lyr.name if top == lyr.top[0] else f"{lyr.name}+{nxt.name}"
    g.node("BatchNormalization",
           [g.current[lyr.bottom[0]], g.const(f"{name}/gamma", gamma),
            g.const(f"{name}/beta", beta), g.const(f"{name}/mean", mean),
            g.const(f"{name}/var", var)],
           [g.fresh(top)], name, epsilon=eps)


def _scale_is_per_channel(lyr) -> bool:
    sp = lyr.scale_param
    return sp.axis == 1 and sp.num_axes == 1


def _channel_shape(g: Graph, blob: str, values: np.ndarray) -> np.ndarray:
    """Per-channel values shaped to broadcast against an N x C x ... blob."""
    rank = len(g.shape(blob))
    return values.reshape(values.shape[0], *([1] * (rank - 2)))


def _scale(g: Graph, lyr):
    """Mul (+ Add) per channel, where no BatchNorm precedes it."""
    if len(lyr.bottom) != 1 or not _scale_is_per_channel(lyr):
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


def _prelu(g: Graph, lyr):
    """PRelu with one slope per channel (or one shared)."""
    slope = _params(g, lyr)[0]
    if slope.size > 1:
        slope = _channel_shape(g, lyr.bottom[0], slope)
    g.node("PRelu", [g.current[lyr.bottom[0]], g.const(f"{lyr.name}/slope", slope)],
           [g.fresh(lyr.top[0])], lyr.name)


def _relu(g: Graph, lyr):
    """Relu / LeakyRelu."""
    alpha = float(lyr.relu_param.negative_slope)
    x = [g.current[lyr.bottom[0]]]
    if alpha:
        g.node("LeakyRelu", x, [g.fresh(lyr.top[0])], lyr.name, alpha=alpha)
    else:
        g.node("Relu", x, [g.fresh(lyr.top[0])], lyr.name)


def _pooling(g: Graph, lyr):
    """MaxPool / AveragePool with Caffe's output size (ceil rounding by default):
    explicit end padding, max ignoring padding, average dividing by the window clipped to
    input + pad as Caffe does; global pooling as GlobalMax/AveragePool."""
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


def _slice(g: Graph, lyr):
    """Split with the slice points as sizes."""
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


def _eltwise(g: Graph, lyr):
    """Sum (any number of inputs, coefficients as Mul), Mul, Max."""
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


def _concat(g: Graph, lyr):
    """Concat."""
    cp = lyr.concat_param
    axis = int(cp.concat_dim) if cp.HasField("concat_dim") else int(cp.axis)
    g.node("Concat", [g.current[b] for b in lyr.bottom], [g.fresh(lyr.top[0])], lyr.name,
           axis=axis)


def _inner_product(g: Graph, lyr):
    """Flatten from its axis + Gemm (transposed weights unless `transpose`)."""
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


def _dropout(g: Graph, lyr):
    """Nothing: identity at test time."""
    # Identity at test time (Caffe scales during training): the top is the bottom.
    g.current[lyr.top[0]] = g.current[lyr.bottom[0]]


def _softmax(g: Graph, lyr):
    """Softmax over Caffe's axis."""
    g.node("Softmax", [g.current[lyr.bottom[0]]], [g.fresh(lyr.top[0])], lyr.name,
           axis=int(lyr.softmax_param.axis))


# The one list of the layer types converted, each with its converter.
CONVERTERS = {"Input": _input, "Convolution": _convolution, "BatchNorm": _batch_norm,
              "Scale": _scale, "PReLU": _prelu, "ReLU": _relu, "Pooling": _pooling,
              "Slice": _slice, "Eltwise": _eltwise, "Concat": _concat,
              "InnerProduct": _inner_product, "Dropout": _dropout, "Softmax": _softmax}
