"""A toolkit net in PyTorch, interpreted from the same Caffe NetParameter (issue 20).

`make bench-peer` compares our Caffe with PyTorch on one training iteration of DRI. For the
figure to mean anything, the PyTorch net must be DRI as the toolkit generates it, not a
second transcription of Table 1 that could drift: so `TorchNet` walks the NetParameter that
`net.build` makes (the same message Caffe loads), layer by layer, each type made by
`torch_layers`. Blob names stay Caffe's: `forward` returns every blob by its Caffe name, and an
in-place layer rebinds its name as Caffe overwrites the blob, so the values compare one to one
with pycaffe's `net.blobs` (tests/test_torch_peer.py).

Sizes that Caffe infers when it sets the net up (input channels, the width a fully-connected
layer sees) are found the same way: by running the layers once at construction, on zeros of
the Input layers' shapes with batch 1, in eval mode.

SGD as Caffe's solver does it: one parameter group per (lr_mult, decay_mult) of the layers'
`param` specs. Caffe updates V <- mu V + lr (g + wd w), w <- w - V; torch.optim.SGD updates
B <- mu B + (g + wd w), w <- w - lr B. With a constant rate V = lr B and the iterates are the
same (Caffe's step policy changes the rate only every `stepsize` iterations).

This module imports no pycaffe: the message can come from pycaffe's caffe_pb2 or from the
caffe_pb2 module loaded on its own (net.peer_worker), so that a PyTorch process never loads
Caffe's OpenMP and BLAS.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import torch_layers

PHASES = {"TRAIN": 0, "TEST": 1}        # caffe.Phase


def included(layer, phase: str) -> bool:
    """Caffe's NetStateRule by phase (the toolkit's nets use no stages or levels): with
    `include` rules, any must match; otherwise no `exclude` rule may."""
    def matches(rule) -> bool:
        if rule.stage or rule.not_stage or rule.HasField("min_level") \
                or rule.HasField("max_level"):
            raise NotImplementedError(f"{layer.name}: NetStateRule with stages or levels")
        return not rule.HasField("phase") or rule.phase == PHASES[phase]
    if layer.include:
        return any(matches(r) for r in layer.include)
    return not any(matches(r) for r in layer.exclude)


def _input_shapes(layer) -> dict[str, tuple[int, ...]]:
    """An Input layer's tops and shapes (one shape given applies to every top, as in Caffe)."""
    shapes = [tuple(s.dim) for s in layer.input_param.shape]
    if len(shapes) == 1:
        shapes *= len(layer.top)
    return dict(zip(layer.top, shapes))


class TorchNet(nn.Module):
    """The layers of `net_param` active in `phase`, as PyTorch modules in Caffe's order.

    `inputs`: {Input top: shape as declared}; `loss_weights`: {loss top: weight}, Caffe's
    default 1 for a loss layer's first top. The module's mode is the phase (`train()` = TRAIN:
    batch statistics, dropout on)."""

    def __init__(self, net_param, phase: str = "TRAIN"):
        super().__init__()
        self.inputs: dict[str, tuple[int, ...]] = {}
        self.loss_weights: dict[str, float] = {}
        self.layers = nn.ModuleDict()
        self._order: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        self._mults: dict[str, list[tuple[float, float]]] = {}
        traced: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for layer in net_param.layer:
                if not included(layer, phase) or layer.type in torch_layers.SKIPPED:
                    continue
                if layer.type == "Input":
                    for top, shape in _input_shapes(layer).items():
                        self.inputs[top] = shape
                        traced[top] = torch.zeros((1,) + shape[1:])
                    continue
                if layer.type not in torch_layers.LAYERS:
                    raise NotImplementedError(
                        f"{layer.name}: Caffe layer type {layer.type} has no PyTorch peer here "
                        f"(known: {', '.join(sorted(torch_layers.LAYERS))})")
                bottoms = [traced[b] for b in layer.bottom]
                module = torch_layers.LAYERS[layer.type](layer, [tuple(b.shape) for b in bottoms])
                module.eval()
                traced.update(zip(layer.top, module(bottoms)))
                self.layers[layer.name] = module
                self._order.append((layer.name, tuple(layer.bottom), tuple(layer.top)))
                self._mults[layer.name] = [(s.lr_mult, s.decay_mult) for s in layer.param]
                weights = list(layer.loss_weight) or ([1.0] if layer.type.endswith("Loss") else [])
                self.loss_weights.update((t, w) for t, w in zip(layer.top, weights) if w)
        self.train(phase == "TRAIN")

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every blob by its Caffe name, from the Input blobs `inputs`."""
        blobs = dict(inputs)
        for name, bottoms, tops in self._order:
            blobs.update(zip(tops, self.layers[name]([blobs[b] for b in bottoms])))
        return blobs

    def total_loss(self, blobs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The objective Caffe minimises: the loss tops times their loss weights."""
        return sum(w * blobs[top] for top, w in self.loss_weights.items())

    def load_caffe(self, params: Mapping[str, Sequence[np.ndarray]]) -> None:
        """Copy Caffe's blobs in: {layer name: [blob arrays]}, as pycaffe's `net.params` or a
        .caffemodel holds them. Every layer with blobs must be there, shapes equal."""
        for name, module in self.layers.items():
            blobs = module.blobs()
            if not blobs:
                continue
            arrays = params.get(name)
            if arrays is None or len(arrays) != len(blobs):
                raise ValueError(f"{name}: {len(blobs)} blobs wanted, "
                                 f"{'none' if arrays is None else len(arrays)} given")
            for t, a in zip(blobs, arrays):
                if int(np.prod(a.shape)) != t.numel():
                    raise ValueError(f"{name}: Caffe blob {tuple(a.shape)}, "
                                     f"PyTorch {tuple(t.shape)}")
            with torch.no_grad():
                if isinstance(module, torch_layers.BatchNorm):
                    module.load_caffe(arrays)
                    continue
                for t, a in zip(blobs, arrays):
                    t.copy_(torch.from_numpy(np.asarray(a, np.float32).reshape(t.shape)))

    def caffe_params(self) -> dict[str, list[np.ndarray]]:
        """The blobs as Caffe would hold them ({layer name: arrays}; BatchNorm's with factor 1)."""
        return {name: [t.detach().numpy().copy() for t in module.blobs()]
                for name, module in self.layers.items() if module.blobs()}

    def learned_count(self) -> int:
        """Learned parameters (conv, fc, Scale, PReLU): what describe counts for Caffe."""
        return sum(p.numel() for p in self.parameters())

    def param_groups(self, base_lr: float, weight_decay: float) -> list[dict]:
        """torch.optim parameter groups at Caffe's per-blob rates and decays; a blob with
        lr_mult 0 is frozen, as Caffe skips its gradient."""
        groups: dict[tuple[float, float], list[nn.Parameter]] = defaultdict(list)
        for name, module in self.layers.items():
            mults = self._mults.get(name, [])
            for i, t in enumerate(module.blobs()):
                if not isinstance(t, nn.Parameter):
                    continue
                lr_mult, decay_mult = mults[i] if i < len(mults) else (1.0, 1.0)
                if lr_mult == 0:
                    t.requires_grad_(False)
                    continue
                groups[(lr_mult, decay_mult)].append(t)
        return [dict(params=ps, lr=base_lr * lr, weight_decay=weight_decay * decay)
                for (lr, decay), ps in groups.items()]

    def sgd(self, base_lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
        """Caffe's SGD solver as torch.optim.SGD (module docstring: the same iterates)."""
        return torch.optim.SGD(self.param_groups(base_lr, weight_decay), lr=base_lr,
                               momentum=momentum)
