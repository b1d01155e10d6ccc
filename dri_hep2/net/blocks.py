"""Layer helpers of the DRI family, each adding named layers to a Caffe NetSpec.

Every helper takes the NetSpec `ns`, a layer-name prefix and its bottom Top(s), and returns
the Top it produced, in the manner of BVLC's examples/pycaffe/caffenet.py. Names follow
bvlc_googlenet's slash style (`dri_1_1/3x3_reduce`), so the describe tool, the tests and
the evaluation find layers by name.
"""
from __future__ import annotations

from .. import ledger, paper
from .proto import L, P

# Caffe's GoogLeNet convention: weights at the base rate with decay, biases at twice the rate
# without decay (reference-facts section 3).
LEARNED_PARAMS = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def _fillers() -> dict:
    """xavier weights (section 2.3) and constant biases (ASSUMPTIONS.md N10)."""
    return dict(weight_filler=dict(type=paper.WEIGHT_FILLER),
                bias_filler=dict(type="constant", value=ledger.BIAS_FILLER_VALUE))


def conv(ns, name: str, bottom, num_output: int, kernel: int, stride: int = 1):
    """A convolution with 'same' padding for stride 1, xavier weights, no activation."""
    ns[name] = L.Convolution(bottom, num_output=num_output, kernel_size=kernel, stride=stride,
                             pad=kernel // 2, param=LEARNED_PARAMS, **_fillers())
    return ns[name]


def fc(ns, name: str, bottom, num_output: int):
    ns[name] = L.InnerProduct(bottom, num_output=num_output, param=LEARNED_PARAMS, **_fillers())
    return ns[name]


def prelu(ns, name: str, bottom):
    """In-place PReLU, the only non-linearity of the net (section 2.1); slopes decay by
    ledger.PRELU_DECAY_MULT (ASSUMPTIONS.md N11)."""
    ns[name] = L.PReLU(bottom, in_place=True,
                       param=[dict(lr_mult=1, decay_mult=ledger.PRELU_DECAY_MULT)])
    return ns[name]


def bn_prelu(ns, name: str, bottom):
    """BatchNorm + Scale + PReLU: the pre-activation of ref. [21] (section 2.2).

    BatchNorm is not in place because the un-normalised bottom is still read elsewhere (a
    shortcut, or the other branches); Caffe masks its statistics from the solver by itself
    and switches to the stored statistics in TEST, so neither `param` nor
    `use_global_stats` is set. Scale and PReLU work in place on the normalised copy.
    """
    ns[f"{name}_bn"] = L.BatchNorm(bottom)
    ns[f"{name}_scale"] = L.Scale(ns[f"{name}_bn"], bias_term=True, in_place=True)
    return prelu(ns, f"{name}_prelu", ns[f"{name}_scale"])


def bn_prelu_conv(ns, name: str, bottom, num_output: int, kernel: int, stride: int = 1):
    """Pre-activated convolution `name` (BN + Scale + PReLU in front, section 2.2)."""
    return conv(ns, name, bn_prelu(ns, name, bottom), num_output, kernel, stride)


def shortcut(ns, name: str, residual, source, source_act, source_width: int,
             residual_width: int, form: str):
    """Add the shortcut from `source` (the branch's 1x1 reduce) to the branch end `residual`.

    The two blobs differ in width (96 -> 128 in DRI 1-1), so the identity of section 2.2
    needs a rule (ASSUMPTIONS.md N2):
    - "zero_pad" (ResNet option A, no parameters): `source` is added to the first
      `source_width` channels of `residual` and the remaining channels pass unchanged, which
      is the sum with `source` zero-padded to `residual_width`. Caffe has no such layer; it is
      Slice + Eltwise SUM + Concat.
    - "projection": a pre-activated 1x1 convolution of `source` to `residual_width`
      (ResNet option B); it shares the pre-activation `source_act` of the branch.
    """
    if form == "projection":
        proj = conv(ns, f"{name}_shortcut", source_act, residual_width, 1)
        ns[f"{name}_residual"] = L.Eltwise(residual, proj, operation=P.Eltwise.SUM)
        return ns[f"{name}_residual"]
    if form != "zero_pad":
        raise ValueError(f"unknown shortcut form {form!r}; choose one of {ledger.SHORTCUTS}")
    if source_width > residual_width:
        raise ValueError(f"{name}: a zero-padding shortcut cannot narrow {source_width} "
                         f"channels to {residual_width}")
    if source_width == residual_width:
        ns[f"{name}_residual"] = L.Eltwise(residual, source, operation=P.Eltwise.SUM)
        return ns[f"{name}_residual"]
    head, tail = L.Slice(residual, slice_point=[source_width], axis=1, ntop=2,
                         name=f"{name}_slice")
    ns[f"{name}_head"], ns[f"{name}_tail"] = head, tail
    ns[f"{name}_identity"] = L.Eltwise(head, source, operation=P.Eltwise.SUM)
    ns[f"{name}_residual"] = L.Concat(ns[f"{name}_identity"], tail, axis=1)
    return ns[f"{name}_residual"]


def dri_block(ns, name: str, bottom, widths: paper.BlockWidths,
              shortcut_form: str = ledger.SHORTCUT):
    """One DRI block (section 2.2, Table 1): four branches concatenated into `<name>/output`.

    - 1x1;
    - 1x1 reduce -> 3x3, with a shortcut from the reduce output to the 3x3 output;
    - 1x1 reduce -> 5x5 -> 3x3 (the deepened branch), shortcut from the reduce to the end;
    - 3x3 max pool (stride 1) -> 1x1.
    The block input is pre-activated once (`<name>/input_*`) and shared by the three 1x1
    convolutions and the pool; every inner convolution has its own pre-activation
    (ASSUMPTIONS.md N3).
    """
    x = bn_prelu(ns, f"{name}/input", bottom)
    b1 = conv(ns, f"{name}/1x1", x, widths.b1x1, 1)

    r3 = conv(ns, f"{name}/3x3_reduce", x, widths.b3x3_reduce, 1)
    r3_act = bn_prelu(ns, f"{name}/3x3", r3)
    c3 = conv(ns, f"{name}/3x3", r3_act, widths.b3x3, 3)
    b3 = shortcut(ns, f"{name}/3x3", c3, r3, r3_act, widths.b3x3_reduce, widths.b3x3,
                  shortcut_form)

    r5 = conv(ns, f"{name}/5x5_reduce", x, widths.b5x5_reduce, 1)
    r5_act = bn_prelu(ns, f"{name}/5x5", r5)
    c5 = conv(ns, f"{name}/5x5", r5_act, widths.b5x5, 5)
    c53 = bn_prelu_conv(ns, f"{name}/5x5_3x3", c5, widths.b5x5_3x3, 3)
    b5 = shortcut(ns, f"{name}/5x5_3x3", c53, r5, r5_act, widths.b5x5_reduce,
                  widths.b5x5_3x3, shortcut_form)

    bp = _pool_branch(ns, name, x, widths.pool_proj)
    ns[f"{name}/output"] = L.Concat(b1, b3, b5, bp, axis=1)
    return ns[f"{name}/output"]


def inception_block(ns, name: str, bottom, widths: paper.BlockWidths):
    """The original Inception module of ref. [16] with Table 1's widths (section 3.3):
    1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1; no shortcut and no extra 3x3. It keeps
    the DRI block's pre-activation so that Table 3(a) compares the module structure alone
    (ASSUMPTIONS.md N15).
    """
    x = bn_prelu(ns, f"{name}/input", bottom)
    b1 = conv(ns, f"{name}/1x1", x, widths.b1x1, 1)
    r3 = conv(ns, f"{name}/3x3_reduce", x, widths.b3x3_reduce, 1)
    b3 = bn_prelu_conv(ns, f"{name}/3x3", r3, widths.b3x3, 3)
    r5 = conv(ns, f"{name}/5x5_reduce", x, widths.b5x5_reduce, 1)
    b5 = bn_prelu_conv(ns, f"{name}/5x5", r5, widths.b5x5, 5)
    bp = _pool_branch(ns, name, x, widths.pool_proj)
    ns[f"{name}/output"] = L.Concat(b1, b3, b5, bp, axis=1)
    return ns[f"{name}/output"]


def _pool_branch(ns, name: str, x, width: int):
    ns[f"{name}/pool"] = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=1, pad=1)
    return conv(ns, f"{name}/pool_proj", ns[f"{name}/pool"], width, 1)


def max_pool(ns, name: str, bottom):
    """The 3x3, stride 2 max pool of the stem and between stages (Caffe rounds up)."""
    ns[name] = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    return ns[name]


def aux_head(ns, index: int, bottom, num_classes: int = paper.NUM_CLASSES):
    """Auxiliary classifier FC<index> in GoogLeNet's form (section 2.1, ASSUMPTIONS.md N5):
    average pool 5, stride 3 -> pre-activated 1x1 conv -> PReLU -> FC<index>-0 -> PReLU ->
    dropout 0.7 -> FC<index> (one score per class, `loss<index>/classifier`)."""
    p = f"loss{index}"
    ns[f"{p}/ave_pool"] = L.Pooling(bottom, pool=P.Pooling.AVE,
                                    kernel_size=ledger.AUX_POOL_KERNEL,
                                    stride=paper.AUX_POOL_STRIDE)
    c = bn_prelu_conv(ns, f"{p}/conv", ns[f"{p}/ave_pool"], ledger.AUX_CONV, 1)
    c = prelu(ns, f"{p}/prelu_conv", c)
    h = fc(ns, f"{p}/fc", c, ledger.AUX_FC)
    h = prelu(ns, f"{p}/prelu_fc", h)
    ns[f"{p}/drop_fc"] = L.Dropout(h, dropout_ratio=paper.AUX_DROPOUT, in_place=True)
    return fc(ns, f"{p}/classifier", ns[f"{p}/drop_fc"], num_classes)


def main_head(ns, bottom, dropout: float = ledger.MAIN_DROPOUT,
              num_classes: int = paper.NUM_CLASSES):
    """Primary classifier FC3: the last block's output pre-activated (as in pre-activation
    ResNets), global average pool, dropout (ledger N6; none at 0), one score per class."""
    x = bn_prelu(ns, "loss3/input", bottom)
    ns["loss3/ave_pool"] = L.Pooling(x, pool=P.Pooling.AVE, global_pooling=True)
    x = ns["loss3/ave_pool"]
    if dropout:
        ns["loss3/drop"] = L.Dropout(x, dropout_ratio=dropout, in_place=True)
        x = ns["loss3/drop"]
    return fc(ns, "loss3/classifier", x, num_classes)
