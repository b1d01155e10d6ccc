"""Caffe's layer types as PyTorch modules, each made from its LayerParameter (issue 20).

`net.torch_peer` builds a whole net from the toolkit's own NetParameter with these, so that
the PyTorch peer of `make bench-peer` is the same net as Caffe's by construction. Each class
reads the fields Caffe reads, with Caffe's defaults (protobuf gives them), and refuses what it
does not reproduce rather than guess. A module's `forward` takes the bottoms and returns the
tops, as lists; `blobs()` gives its tensors in Caffe's blob order, so that weights copy across
by position (layer name, blob index) exactly as in a .caffemodel.

Where Caffe and PyTorch differ and what is done about it:
- Pooling: Caffe rounds the output size up and drops a last window that would start in the
  padding, but only when pad > 0; PyTorch's ceil_mode drops it whatever the pad. The two differ
  only when stride > kernel; the size is computed by Caffe's rule and a difference refused.
  Average pooling divides by the window clipped to image + pad, in both (count_include_pad).
- BatchNorm has no affine part in Caffe (a Scale layer follows). Its statistics are a running
  sum with a scale factor; they are stored here as PyTorch's running mean / variance, and read
  back as Caffe's three blobs with factor 1. In TRAIN both normalise with the batch's biased
  variance; the running averages themselves differ in their first iterations (Caffe's is
  bias-corrected), which no training step reads.
- SoftmaxWithLoss keeps its unweighted loss as its top, as Caffe's blob holds it; the loss
  weights are applied by the net (torch_peer.TorchNet.total_loss).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CaffeLayer(nn.Module):
    """One Caffe layer. `shapes`: its bottoms' shapes, for the sizes Caffe infers (channels,
    fully-connected input width)."""

    def __init__(self, layer, shapes):
        super().__init__()
        self.caffe_name, self.caffe_type = layer.name, layer.type

    def blobs(self) -> list[torch.Tensor]:
        return []


def _pair(p, field: str, default: int, axes: str | None = None) -> tuple[int, int]:
    """A ConvolutionParameter field as (h, w): `<axes>_h` / `<axes>_w` where set, else the
    repeated `field` (one value for both axes, or one per axis), else Caffe's default."""
    if axes and (p.HasField(f"{axes}_h") or p.HasField(f"{axes}_w")):
        return getattr(p, f"{axes}_h"), getattr(p, f"{axes}_w")
    values = list(getattr(p, field)) or [default]
    if len(values) > 2:
        raise NotImplementedError(f"{field} {values}: only 2-D convolutions")
    return values[0], values[-1]


class Convolution(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.convolution_param
        if p.axis != 1 or len(shapes[0]) != 4:
            raise NotImplementedError(f"{layer.name}: only NCHW convolutions on axis 1")
        self.conv = nn.Conv2d(shapes[0][1], p.num_output, _pair(p, "kernel_size", 0, "kernel"),
                              stride=_pair(p, "stride", 1, "stride"),
                              padding=_pair(p, "pad", 0, "pad"),
                              dilation=_pair(p, "dilation", 1), groups=p.group,
                              bias=p.bias_term)

    def forward(self, bottoms):
        return [self.conv(bottoms[0])]

    def blobs(self):
        return [self.conv.weight] + ([self.conv.bias] if self.conv.bias is not None else [])


class InnerProduct(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.inner_product_param
        if p.transpose:
            raise NotImplementedError(f"{layer.name}: transposed InnerProduct weights")
        self.axis = p.axis
        self.fc = nn.Linear(math.prod(shapes[0][p.axis:]), p.num_output, bias=p.bias_term)

    def forward(self, bottoms):
        return [self.fc(bottoms[0].flatten(self.axis))]

    def blobs(self):
        return [self.fc.weight] + ([self.fc.bias] if self.fc.bias is not None else [])


class BatchNorm(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.batch_norm_param
        # Unset: Caffe's phase decides (batch statistics in TRAIN), here the module's mode.
        self.use_global_stats = p.use_global_stats if p.HasField("use_global_stats") else None
        self.eps, self.momentum = p.eps, 1.0 - p.moving_average_fraction
        channels = shapes[0][1]
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("factor", torch.ones(1))

    def forward(self, bottoms):
        batch_stats = self.training if self.use_global_stats is None else not self.use_global_stats
        return [F.batch_norm(bottoms[0], self.running_mean, self.running_var, None, None,
                             training=batch_stats, momentum=self.momentum, eps=self.eps)]

    def blobs(self):
        return [self.running_mean, self.running_var, self.factor]

    def load_caffe(self, arrays) -> None:
        """Caffe's sums and scale factor (factor 0: statistics all zero, as Caffe reads it)."""
        factor = float(arrays[2].reshape(-1)[0])
        scale = 0.0 if factor == 0 else 1.0 / factor
        self.running_mean.copy_(torch.from_numpy(arrays[0].reshape(-1) * scale))
        self.running_var.copy_(torch.from_numpy(arrays[1].reshape(-1) * scale))


def _per_channel(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (C,) tensor shaped to broadcast over axis 1 of `like`."""
    return t.view(1, -1, *([1] * (like.dim() - 2)))


class Scale(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.scale_param
        if len(layer.bottom) != 1 or p.axis != 1 or p.num_axes != 1:
            raise NotImplementedError(f"{layer.name}: only a learned per-channel Scale")
        channels = shapes[0][1]
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if p.bias_term else None

    def forward(self, bottoms):
        x = bottoms[0] * _per_channel(self.weight, bottoms[0])
        return [x + _per_channel(self.bias, x) if self.bias is not None else x]

    def blobs(self):
        return [self.weight] + ([self.bias] if self.bias is not None else [])


class PReLU(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        channels = 1 if layer.prelu_param.channel_shared else shapes[0][1]
        self.weight = nn.Parameter(torch.full((channels,), 0.25))   # Caffe's default filler

    def forward(self, bottoms):
        return [F.prelu(bottoms[0], self.weight)]

    def blobs(self):
        return [self.weight]


class ReLU(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        self.slope = layer.relu_param.negative_slope

    def forward(self, bottoms):
        return [F.leaky_relu(bottoms[0], self.slope) if self.slope else F.relu(bottoms[0])]


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """Caffe's PoolingLayer::Reshape: round up (or down), then, with padding, drop a last
    window that starts in the padding."""
    span = (size + 2 * pad - kernel) / stride
    pooled = (math.ceil(span) if ceil else math.floor(span)) + 1
    if pad and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


class Pooling(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.pooling_param
        names = {0: "MAX", 1: "AVE"}
        if p.pool not in names:
            raise NotImplementedError(f"{layer.name}: pooling method {p.pool} (only MAX, AVE)")
        self.method = names[p.pool]
        h, w = shapes[0][2:]
        if p.global_pooling:
            self.kernel, self.stride, self.pad = (h, w), (1, 1), (0, 0)
        else:
            self.kernel = ((p.kernel_h, p.kernel_w) if p.HasField("kernel_h")
                           else (p.kernel_size, p.kernel_size))
            self.stride = ((p.stride_h, p.stride_w) if p.HasField("stride_h")
                           else (p.stride, p.stride))
            self.pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
        self.ceil = p.round_mode == 0 if hasattr(p, "round_mode") else True
        self.out = tuple(caffe_pooled_size(s, k, st, pd, self.ceil)
                         for s, k, st, pd in zip((h, w), self.kernel, self.stride, self.pad))

    def forward(self, bottoms):
        x = bottoms[0]
        if self.method == "MAX":
            y = F.max_pool2d(x, self.kernel, self.stride, self.pad, ceil_mode=self.ceil)
        else:
            y = F.avg_pool2d(x, self.kernel, self.stride, self.pad, ceil_mode=self.ceil,
                             count_include_pad=True)
        if tuple(y.shape[2:]) != self.out:
            raise NotImplementedError(
                f"{self.caffe_name}: PyTorch pools {x.shape[2]}x{x.shape[3]} to "
                f"{tuple(y.shape[2:])}, Caffe to {self.out} (a last window in the padding)")
        return [y]


class Concat(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        self.axis = layer.concat_param.axis

    def forward(self, bottoms):
        return [torch.cat(bottoms, dim=self.axis)]


class Slice(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.slice_param
        self.axis, size, tops = p.axis, shapes[0][p.axis], len(layer.top)
        points = list(p.slice_point) or [size // tops * i for i in range(1, tops)]
        self.sizes = [b - a for a, b in zip([0] + points, points + [size])]

    def forward(self, bottoms):
        return list(torch.split(bottoms[0], self.sizes, dim=self.axis))


class Eltwise(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.eltwise_param
        self.operation = {0: "PROD", 1: "SUM", 2: "MAX"}[p.operation]
        self.coeff = list(p.coeff) or [1.0] * len(layer.bottom)

    def forward(self, bottoms):
        if self.operation == "SUM":
            out = bottoms[0] if self.coeff[0] == 1 else self.coeff[0] * bottoms[0]
            for c, b in zip(self.coeff[1:], bottoms[1:]):
                out = out + (b if c == 1 else c * b)
            return [out]
        out = bottoms[0]
        for b in bottoms[1:]:
            out = out * b if self.operation == "PROD" else torch.maximum(out, b)
        return [out]


class Split(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        self.tops = len(layer.top)

    def forward(self, bottoms):
        return bottoms * self.tops


class Dropout(CaffeLayer):
    """Caffe scales the kept units by 1 / (1 - ratio) in TRAIN, as F.dropout does."""

    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        self.ratio = layer.dropout_param.dropout_ratio

    def forward(self, bottoms):
        return [F.dropout(bottoms[0], self.ratio, training=self.training)]


class Softmax(CaffeLayer):
    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        self.axis = layer.softmax_param.axis

    def forward(self, bottoms):
        return [F.softmax(bottoms[0], dim=self.axis)]


class SoftmaxWithLoss(CaffeLayer):
    """Mean cross-entropy over the batch: Caffe's VALID (and BATCH_SIZE) normalisation."""

    def __init__(self, layer, shapes):
        super().__init__(layer, shapes)
        p = layer.loss_param
        if len(shapes[0]) != 2 or p.HasField("ignore_label") or p.normalization not in (1, 2):
            raise NotImplementedError(f"{layer.name}: only (N, classes) scores, no ignore_label, "
                                      "VALID or BATCH_SIZE normalisation")

    def forward(self, bottoms):
        return [F.cross_entropy(bottoms[0], bottoms[1].long())]


# Caffe type -> module. Input layers are the net's (torch_peer); Accuracy computes a TEST
# metric without a gradient and is left out of the net.
LAYERS = {cls.__name__: cls for cls in (Convolution, InnerProduct, BatchNorm, Scale, PReLU, ReLU,
                                        Pooling, Concat, Slice, Eltwise, Split, Dropout, Softmax,
                                        SoftmaxWithLoss)}
SKIPPED = ("Accuracy",)
