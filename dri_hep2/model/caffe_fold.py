"""A deploy net with its BatchNorm + Scale pairs folded, for inference only (issue 20).

At TEST time Caffe's BatchNorm is a fixed per-channel affine map, (x - mean) / sqrt(var + eps)
with its stored statistics, and the Scale after it another one (gamma x + beta). Caffe still
runs them as two layers, two passes over the blob. Many Caffe deployments fold them:

- where the BatchNorm reads a Convolution's output that nothing else reads, into that
  convolution's weights and bias (W' = a W, b' = a b + c per output channel): both layers go;
- elsewhere (DRI is pre-activated: most BatchNorms read a pooling, a Concat or a convolution
  output that a residual sum reads too) into one Scale layer with a bias: one pass, not two.

`fold` builds the folded NetParameter (the one place that writes it), loads it in pycaffe,
fills its weights from the loaded unfolded net, and checks the two nets on the same inputs:
every branch softmax and the fused sum within `TOLERANCE`, else the unfolded net is kept. The
folded net computes the same sums in another order, so its probabilities differ from the
unfolded net's by float32 rounding (measured: 2.4e-7 on the demo's run, 400 iterations).
What it buys: on the demo's run, batch 64, both nets taking turns in one process (load 2.2),
74.2-74.8 cells/s unfolded, 77.5-79.0 folded, +5 %; DRI's 33 BatchNorms had taken 3-5 % of a
pass and its Scales 2-3 %.
Training never sees it: the run's deploy.prototxt and snapshots stay as they are.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .. import ledger
from ..experiment import evaluate
from ..net import proto

# The check's bound on any probability (branch softmaxes and their sum): the bound the ONNX
# export is held to (ledger U5), another net computing the same function in another order.
TOLERANCE = ledger.EXPORT_MAX_ABS_DIFF


@dataclass(frozen=True)
class Pair:
    """One BatchNorm and the Scale that alone reads it; `conv`: the Convolution folded into,
    or None (the pair becomes one Scale)."""
    batch_norm: str
    scale: str
    conv: str | None
    eps: float          # BatchNorm's own (batch_norm_param.eps, Caffe's default 1e-5)


def pairs(net_param) -> list[Pair]:
    """The BatchNorm + Scale pairs of a deploy NetParameter that fold exactly."""
    layers = list(net_param.layer)
    if any(layer.include or layer.exclude for layer in layers):
        return []      # phase rules: not a deploy net this toolkit writes; left alone
    # Blobs are versioned by the layer that wrote them (in-place layers reuse names), and each
    # version's readers counted, so "nothing else reads it" means exactly that.
    writer: dict[str, int] = {}
    read_by: Counter = Counter()
    version_of: list[list[tuple[str, int | None]]] = []
    for i, layer in enumerate(layers):
        version_of.append([(b, writer.get(b)) for b in layer.bottom])
        read_by.update(version_of[-1])
        for top in layer.top:
            writer[top] = i
    found = []
    for i, bn in enumerate(layers[:-1]):
        scale = layers[i + 1]
        if (bn.type != "BatchNorm" or bn.batch_norm_param.HasField("use_global_stats")
                and not bn.batch_norm_param.use_global_stats
                or scale.type != "Scale" or list(scale.bottom) != [bn.top[0]]
                or read_by[(bn.top[0], i)] != 1 or scale.scale_param.axis != 1
                or scale.scale_param.num_axes != 1):
            continue
        source, by = version_of[i][0]
        conv = layers[by] if by is not None else None
        foldable = (conv is not None and conv.type == "Convolution"
                    and conv.convolution_param.axis == 1      # channels are weights' axis 0
                    and read_by[(source, by)] == 1 and len(conv.top) == 1)
        found.append(Pair(bn.name, scale.name, conv.name if foldable else None,
                          bn.batch_norm_param.eps))
    return found


def folded_param(net_param, found: list[Pair]):
    """The NetParameter with `found` folded: a folded convolution writes the Scale's top and
    has a bias; an unfolded pair is one Scale layer (with a bias) named as the pair's Scale."""
    out = proto.caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    by_bn = {p.batch_norm: p for p in found}
    by_conv = {p.conv: p for p in found if p.conv}
    scales = {p.scale for p in found}
    tops = {layer.name: layer.top[0] for layer in net_param.layer if layer.name in scales}
    for layer in net_param.layer:
        if layer.name in scales:
            continue
        pair = by_bn.get(layer.name)
        if pair is not None:
            if pair.conv is None:
                merged = out.layer.add(name=pair.scale, type="Scale")
                merged.bottom.append(layer.bottom[0])
                merged.top.append(tops[pair.scale])
                merged.scale_param.bias_term = True
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        if layer.name in by_conv:
            new.top[0] = tops[by_conv[layer.name].scale]
            new.convolution_param.bias_term = True
    return out


def _affine(net, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (a, c) with BatchNorm then Scale = a x + c, from the loaded net's blobs,
    as Caffe's TEST-phase BatchNorm computes it: the stored sums divided by the stored scale
    factor (0 where that is 0), in float64 and rounded once to float32 by the caller."""
    mean_sum, var_sum, factor = (b.data.astype(np.float64) for b in net.params[pair.batch_norm])
    f = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    scale = net.params[pair.scale]
    gamma = scale[0].data.astype(np.float64)
    beta = scale[1].data.astype(np.float64) if len(scale) > 1 else 0.0
    a = gamma / np.sqrt(var_sum * f + pair.eps)
    return a, beta - a * mean_sum * f


@dataclass
class Folded:
    """The net to run and what folding did: `pairs` folded (`into_conv` of them into a
    convolution), the check's largest probability difference, whether it passed."""
    net: object
    pairs: int = 0
    into_conv: int = 0
    max_abs_diff: float | None = None
    passed: bool = False


def fold(net_param, net, check_inputs: np.ndarray) -> Folded:
    """The folded twin of the loaded deploy net `net` (of `net_param`), checked on
    `check_inputs` (N x C x H x W float32, transformed); `net` itself when nothing folds or the
    check fails (then `passed` is False and `max_abs_diff` says by how much)."""
    found = pairs(net_param)
    if not found:
        return Folded(net)
    twin = proto.load(folded_param(net_param, found))
    folded = {p.conv or p.scale: p for p in found}
    for name, blobs in twin.params.items():
        pair = folded.get(name)
        if pair is None:
            for mine, theirs in zip(blobs, net.params[name]):
                mine.data[...] = theirs.data
            continue
        a, c = _affine(net, pair)
        if pair.conv is None:
            blobs[0].data[...], blobs[1].data[...] = a, c
        else:
            weight = net.params[pair.conv][0].data.astype(np.float64)
            bias = (net.params[pair.conv][1].data.astype(np.float64)
                    if len(net.params[pair.conv]) > 1 else 0.0)
            blobs[0].data[...] = weight * a.reshape(-1, *[1] * (weight.ndim - 1))
            blobs[1].data[...] = a * bias + c
    diff = max_abs_diff(net, twin, check_inputs)
    result = Folded(twin, len(found), sum(p.conv is not None for p in found), diff,
                    diff < TOLERANCE)
    if not result.passed:
        result.net = net
    return result


def _probabilities(net, x: np.ndarray) -> dict[str, np.ndarray]:
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data[...] = x
    net.forward()
    names = [*evaluate.BRANCH_BLOBS["prob"].values(), evaluate.FUSED_BLOB]
    return {b: net.blobs[b].data.copy() for b in names if b in net.blobs}


def max_abs_diff(net, twin, x: np.ndarray) -> float:
    """The largest difference of any branch softmax or the fused sum between two nets on the
    same inputs; infinite when they do not give the same outputs."""
    ours, theirs = _probabilities(net, x), _probabilities(twin, x)
    if set(ours) != set(theirs) or not ours:
        return float("inf")
    return max(float(np.abs(ours[b] - theirs[b]).max()) for b in ours)
