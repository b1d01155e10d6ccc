"""The four nets of Table 3(a) from one generator, as Caffe NetParameters.

The variant is data: which blocks of Table 1 it keeps (SRI drops DRI 1-2, 2-3 and 3-2,
section 3.3) and which module fills them (DRI block, section 2.2, or the Inception module of
ref. [16]). Everything else (stem, pools, the three classifier heads, losses) is shared.
Layer by layer (Fig. 1 is lost; ASSUMPTIONS.md N1-N6):

    data 1x76x76 -> conv1/7x7_s2 (64) -> pool1/3x3_s2 -> conv2/3x3_reduce (1x1, 64)
    -> conv2/3x3 (192)                                                  [stem, N1]  19x19
    -> DRI 1-1, 1-2 -> FC1 head                                                     19x19
    -> pool2/3x3_s2 -> DRI 2-1, 2-2, 2-3 -> FC2 head                                 9x9
    -> pool3/3x3_s2 -> DRI 3-1, 3-2 -> global average pool -> dropout -> FC3         4x4
"""
from __future__ import annotations

from pathlib import Path

from .. import ledger, paper
from ..data.folder import DataFolder
from . import blocks
from .options import NetOptions
from .proto import L, P, caffe


def variant_of(name: str) -> paper.Variant:
    """The Table 3(a) row of a variant key (paper.VARIANTS is the one list of them)."""
    if name not in paper.VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(paper.VARIANTS)}")
    return paper.VARIANTS[name]


def is_inception(variant: str) -> bool:
    """Built of ref. [16]'s Inception modules rather than DRI blocks (section 3.3)."""
    return variant_of(variant).module == "inception"


def stages(variant: str) -> tuple[tuple[str, ...], ...]:
    """Table 1 columns (keys of paper.TABLE1) the variant keeps, grouped by stage."""
    removed = paper.SRI_REMOVED if variant_of(variant).shallow else ()
    return tuple(tuple(b for b in stage if b not in removed) for stage in paper.STAGES)


def block_name(variant: str, column: str) -> str:
    """Layer-name prefix of a block: `dri_1_1` for DRI blocks, `inception_1_1` for Inception
    modules (bvlc_googlenet names its modules `inception_3a`)."""
    return column.replace("dri", "inception", 1) if is_inception(variant) else column


def widths(dri_2_3_1x1: int | None = None) -> dict[str, paper.BlockWidths]:
    """Table 1, with DRI 2-3's 1x1 branch optionally overridden (the printed 244 is likely a
    typo of 224, ASSUMPTIONS.md N12)."""
    table = dict(paper.TABLE1)
    if dri_2_3_1x1 is not None:
        b = table["dri_2_3"]
        table["dri_2_3"] = paper.BlockWidths(dri_2_3_1x1, b.b3x3_reduce, b.b3x3, b.b5x5_reduce,
                                             b.b5x5, b.b5x5_3x3, b.pool_proj)
    return table


def aux_blocks(variant: str, options: NetOptions = NetOptions()) -> tuple[str, str]:
    """The Table 1 blocks FC1 and FC2 follow (ledger N4): `options.aux_after`, or the last
    block of each stage in ledger.AUX_AFTER_STAGES."""
    kept = [column for stage in stages(variant) for column in stage]
    if options.aux_after is None:
        return tuple(stages(variant)[s - 1][-1] for s in ledger.AUX_AFTER_STAGES)
    missing = [b for b in options.aux_after if b not in kept]
    if missing:
        raise ValueError(f"aux_after names {missing[0]}, which {variant} does not have "
                         f"(its blocks: {', '.join(kept)})")
    if kept.index(options.aux_after[0]) > kept.index(options.aux_after[1]):
        raise ValueError(f"aux_after {options.aux_after}: FC1 must come before FC2")
    return options.aux_after


def _body(ns, variant: str, data, options: NetOptions, num_classes: int):
    """Stem, blocks and the three heads, each with `num_classes` scores; returns the
    classifier Tops of FC1, FC2, FC3."""
    table = widths(options.dri_2_3_1x1)
    heads = aux_blocks(variant, options)
    x = blocks.conv(ns, "conv1/7x7_s2", data, ledger.STEM_CONV1, 7, stride=2)
    x = blocks.max_pool(ns, "pool1/3x3_s2", x)
    x = blocks.bn_prelu_conv(ns, "conv2/3x3_reduce", x, ledger.STEM_CONV2_REDUCE, 1)
    x = blocks.bn_prelu_conv(ns, "conv2/3x3", x, ledger.STEM_CONV2, 3)
    classifiers = []
    for number, stage in enumerate(stages(variant), start=1):
        if number > 1:
            x = blocks.max_pool(ns, f"pool{number}/3x3_s2", x)
        for column in stage:
            name = block_name(variant, column)
            if is_inception(variant):
                x = blocks.inception_block(ns, name, x, table[column])
            else:
                x = blocks.dri_block(ns, name, x, table[column], options.shortcut)
            if column in heads:
                classifiers.append(blocks.aux_head(ns, len(classifiers) + 1, x, num_classes))
    classifiers.append(blocks.main_head(ns, x, options.main_dropout, num_classes))
    return classifiers


def _finish(net, variant: str, options: NetOptions):
    """Name the net and apply the options that act on whole layer types."""
    if options.scale_decay_mult is not None:
        for layer in net.layer:
            if layer.type == "Scale":
                del layer.param[:]
                for _ in range(2):                                  # gamma, beta
                    layer.param.add(lr_mult=1, decay_mult=options.scale_decay_mult)
    net.name = variant
    return net


def _losses(ns, classifiers, label) -> None:
    """Eq. 2: one SoftmaxWithLoss per branch, weighted 0.3, 0.3, 1."""
    for index, (cls, weight) in enumerate(zip(classifiers, paper.LOSS_WEIGHTS), start=1):
        ns[f"loss{index}/loss"] = L.SoftmaxWithLoss(cls, label, loss_weight=weight)


def _probabilities(ns, classifiers, **phase) -> None:
    """A softmax per branch and the paper's sum layer `prob` over the three (section 2.1).
    The sum is of probabilities, not scores (ASSUMPTIONS.md N13)."""
    probs = []
    for index, cls in enumerate(classifiers, start=1):
        ns[f"loss{index}/prob"] = L.Softmax(cls, **phase)
        probs.append(ns[f"loss{index}/prob"])
    ns["prob"] = L.Eltwise(*probs, operation=P.Eltwise.SUM, **phase)


def _data_layer(source: str, mean_file: str, batch_size: int, phase: int):
    return L.Data(source=source, backend=P.Data.LMDB, batch_size=batch_size, ntop=2,
                  transform_param=dict(mean_file=mean_file, scale=ledger.INPUT_SCALE),
                  include=dict(phase=phase))


def train_val(variant: str, data_dir: str | Path = "data", batch_size: int = paper.BATCH_SIZE,
              test_batch_size: int = ledger.TEST_BATCH_SIZE,
              bn_moving_average: float | None = None,
              num_classes: int = paper.NUM_CLASSES, **knobs):
    """The training / validation net: LMDB Data layers of the data folder's train and val
    splits with the training mean subtracted and ledger.INPUT_SCALE applied (N9), the three
    weighted losses, and in TEST the top-1 accuracy of each branch and of the fused prediction.

    `bn_moving_average` sets every BatchNorm's moving_average_fraction (Caffe's default 0.999
    when None); a short schedule needs a short window (ASSUMPTIONS.md T7). `num_classes`:
    the classifier width, the data folder's class list (the paper's six by default). `knobs`:
    the fields of NetOptions."""
    options = NetOptions(**knobs)
    data = DataFolder(data_dir)
    mean_file = str(data.mean)
    ns = caffe.NetSpec()
    ns.data, ns.label = _data_layer(str(data.lmdb("train")), mean_file, batch_size,
                                    caffe.TRAIN)
    classifiers = _body(ns, variant, ns.data, options, num_classes)
    _losses(ns, classifiers, ns.label)
    test = dict(include=dict(phase=caffe.TEST))
    for index, cls in enumerate(classifiers, start=1):
        ns[f"loss{index}/top-1"] = L.Accuracy(cls, ns.label, **test)
    _probabilities(ns, classifiers, **test)
    ns["fused/top-1"] = L.Accuracy(ns["prob"], ns.label, **test)
    net = ns.to_proto()
    # NetSpec gives one layer per top name; the TEST phase's Data layer is a copy of TRAIN's.
    val = _data_layer(str(data.lmdb("val")), mean_file, test_batch_size, caffe.TEST)
    val_proto = caffe.NetSpec()
    val_proto.data, val_proto.label = val
    net.layer.insert(1, val_proto.to_proto().layer[0])
    if bn_moving_average is not None:
        for layer in net.layer:
            if layer.type == "BatchNorm":
                layer.batch_norm_param.moving_average_fraction = bn_moving_average
    return _finish(net, variant, options)


def deploy(variant: str, num_classes: int = paper.NUM_CLASSES, **knobs):
    """The inference net: Input `data` 1x1x76x76 (mean-subtracted and scaled by the caller as
    the Data layer does, N9), softmax per branch `loss<k>/prob` and their sum `prob`, each
    with `num_classes` outputs."""
    ns = caffe.NetSpec()
    ns.data = L.Input(shape=dict(dim=[1, ledger.INPUT_CHANNELS, paper.INPUT_SIZE,
                                      paper.INPUT_SIZE]))
    _probabilities(ns, _body(ns, variant, ns.data, NetOptions(**knobs), num_classes))
    return _finish(ns.to_proto(), variant, NetOptions(**knobs))


def benchmark(variant: str, batch_size: int = paper.BATCH_SIZE,
              num_classes: int = paper.NUM_CLASSES, **knobs):
    """The training net with Input layers in place of the LMDBs, for `caffe time` (which
    builds the TRAIN phase): same layers and losses as train_val, no data to read."""
    ns = caffe.NetSpec()
    ns.data, ns.label = L.Input(shape=[dict(dim=[batch_size, ledger.INPUT_CHANNELS,
                                                 paper.INPUT_SIZE, paper.INPUT_SIZE]),
                                       dict(dim=[batch_size])], ntop=2)
    _losses(ns, _body(ns, variant, ns.data, NetOptions(**knobs), num_classes), ns.label)
    return _finish(ns.to_proto(), variant, NetOptions(**knobs))

