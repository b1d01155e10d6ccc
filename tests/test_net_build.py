"""The DRI family as real Caffe loads and runs it (section 2, Table 1, Eq. 2, Table 3(a))."""
from __future__ import annotations

import numpy as np
import pytest

from dri_hep2 import ledger, paper
from dri_hep2.net import build, proto
from dri_hep2.net.options import NetOptions

# Tiny batches keep every whole-net test to about a second on a CPU.
BATCH = 2


def _net(caffe, tmp_path, net_param, phase):
    return proto.load(net_param, phase)


def _unit_batchnorm(net):
    """Give every BatchNorm the statistics of unit-variance data. A fresh net's are zero,
    which Caffe's TEST phase turns into x / sqrt(eps) per layer (~1e9 by the heads)."""
    for name in net._layer_names:
        if net.layer_dict[name].type == "BatchNorm":
            mean, var, factor = net.params[name]
            mean.data[...], var.data[...], factor.data[...] = 0, 1, 1


def _train_val(variant, data_dir, **kw):
    return build.train_val(variant, data_dir=str(data_dir), batch_size=BATCH,
                           test_batch_size=BATCH, **kw)


def _layers(net_param, type_name):
    return [layer for layer in net_param.layer if layer.type == type_name]


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_train_net_runs_forward_backward_with_weighted_losses(caffe, tmp_path, tiny_data_dir,
                                                              variant):
    """Section 2.1 / Eq. 2: three softmax losses weighted 0.3, 0.3, 1 train together."""
    net = _net(caffe, tmp_path, _train_val(variant, tiny_data_dir), "TRAIN")
    out = net.forward()
    weights = {name: net.blob_loss_weights[name] for name in out}
    assert weights == pytest.approx({f"loss{k}/loss": w
                                     for k, w in zip((1, 2, 3), paper.LOSS_WEIGHTS)})
    assert all(np.isfinite(v) and v > 0 for v in out.values())
    net.backward()
    # The gradient reaches the first convolution through all three heads.
    assert np.abs(net.params["conv1/7x7_s2"][0].diff).sum() > 0
    assert net.blobs["data"].data.shape == (BATCH, ledger.INPUT_CHANNELS, paper.INPUT_SIZE,
                                            paper.INPUT_SIZE)


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_test_net_reports_accuracy_per_branch_and_fused(caffe, tmp_path, tiny_data_dir,
                                                        variant):
    """Table 3(b): each branch and the sum layer are scored in the TEST phase."""
    net = _net(caffe, tmp_path, _train_val(variant, tiny_data_dir), "TEST")
    _unit_batchnorm(net)
    out = net.forward()
    assert {"loss1/top-1", "loss2/top-1", "loss3/top-1", "fused/top-1"} <= set(out)
    fused = net.blobs["loss1/prob"].data + net.blobs["loss2/prob"].data \
        + net.blobs["loss3/prob"].data
    np.testing.assert_allclose(net.blobs["prob"].data, fused, rtol=1e-6)
    # Each accuracy is the share of this batch whose arg-max is the label (Caffe's Accuracy
    # counts ties as hits, which random scores never produce).
    labels = net.blobs["label"].data.astype(int)
    for name, scores in [(f"loss{k}/top-1", net.blobs[f"loss{k}/classifier"].data)
                         for k in (1, 2, 3)] + [("fused/top-1", net.blobs["prob"].data)]:
        assert out[name] == pytest.approx(np.mean(scores.argmax(axis=1) == labels)), name


def test_train_val_reads_the_data_folder_contract():
    """docs/design.md: lmdb/train (TRAIN, batch 24), lmdb/val (TEST), the training mean."""
    data = _layers(build.train_val("dri", data_dir="some/dir"), "Data")
    phases = {layer.include[0].phase: layer for layer in data}
    assert phases[0].data_param.source == "some/dir/lmdb/train"
    assert phases[0].data_param.batch_size == paper.BATCH_SIZE
    assert phases[1].data_param.source == "some/dir/lmdb/val"
    for layer in data:
        assert layer.transform_param.mean_file == "some/dir/lmdb/mean.binaryproto"
        assert layer.transform_param.scale == pytest.approx(ledger.INPUT_SCALE)


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_deploy_outputs_branch_probabilities_and_their_sum(caffe, tmp_path, variant):
    """Section 2.1: the sum layer fuses FC1, FC2, FC3; the branches stay readable."""
    net = _net(caffe, tmp_path, build.deploy(variant), "TEST")
    _unit_batchnorm(net)
    assert net.blobs["data"].data.shape == (1, 1, 76, 76)
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(size=(1, 1, 76, 76))
    net.forward()
    branches = [net.blobs[f"loss{k}/prob"].data for k in (1, 2, 3)]
    for p in branches:
        assert p.shape == (1, paper.NUM_CLASSES)
        np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(net.blobs["prob"].data, sum(branches), rtol=1e-6)


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_prelu_is_the_only_nonlinearity_and_xavier_fills_every_weight(variant):
    """Section 2.1: PReLU only; section 2.3: 'xavier' initialisation."""
    net = build.train_val(variant)
    types = {layer.type for layer in net.layer}
    assert not types & {"ReLU", "Sigmoid", "TanH", "ELU", "LRN"}
    assert "PReLU" in types
    learned = _layers(net, "Convolution") + _layers(net, "InnerProduct")
    for layer in learned:
        p = layer.convolution_param if layer.type == "Convolution" else layer.inner_product_param
        assert p.weight_filler.type == "xavier", layer.name
    for layer in _layers(net, "PReLU"):
        assert layer.param[0].decay_mult == ledger.PRELU_DECAY_MULT


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_two_auxiliary_dropouts_of_0_7(variant):
    """Section 2.1: FC1-0 and FC2-0 are followed by a dropout of 0.7."""
    drops = {layer.name: layer.dropout_param.dropout_ratio
             for layer in _layers(build.train_val(variant), "Dropout")}
    aux = {name: r for name, r in drops.items() if r == pytest.approx(paper.AUX_DROPOUT)}
    assert sorted(aux) == ["loss1/drop_fc", "loss2/drop_fc"]
    assert drops["loss3/drop"] == pytest.approx(ledger.MAIN_DROPOUT)
    fc0 = {layer.name: layer.inner_product_param.num_output
           for layer in _layers(build.train_val(variant), "InnerProduct")}
    assert fc0["loss1/fc"] == fc0["loss2/fc"] == ledger.AUX_FC


def test_every_convolution_but_the_first_is_pre_activated():
    """Section 2.2: BatchNorm and PReLU are placed in front of convolutional layers."""
    net = build.deploy("dri")
    writer = {}   # blob -> type of the last layer that wrote it
    layer_of_top = {}
    for layer in net.layer:
        for top in layer.top:
            writer[top] = layer.type
            layer_of_top[top] = layer
        if layer.type != "Convolution" or layer.name == "conv1/7x7_s2":
            continue
        bottom = layer.bottom[0]
        if writer[bottom] == "Pooling":     # the pool branch: pool of the activated input
            bottom = layer_of_top[bottom].bottom[0]
        assert writer[bottom] == "PReLU", layer.name
        chain = [l.type for l in net.layer if bottom in l.top]
        assert chain == ["BatchNorm", "Scale", "PReLU"], layer.name


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_block_outputs_have_table1_widths(caffe, tmp_path, variant):
    """Table 1: a block's width is the sum of its branch ends (DRI 1-1 = 288 ... 3-2 = 1152;
    an Inception module of ref. [16] ends its 5x5 branch at the 5x5)."""
    net = _net(caffe, tmp_path, build.deploy(variant), "TEST")
    for stage in build.stages(variant):
        for column in stage:
            w = paper.TABLE1[column]
            want = w.inception_output if build.is_inception(variant) else w.output
            assert net.blobs[f"{build.block_name(variant, column)}/output"].data.shape[1] == want


def test_dri_widths_sum_to_the_printed_totals():
    """Table 1 summed by hand: 288, 512, 576, 608, 724, 960, 1152 (244 kept as printed)."""
    assert [paper.TABLE1[c].output for s in paper.STAGES for c in s] == \
        [288, 512, 576, 608, 724, 960, 1152]


def test_sri_drops_three_blocks():
    """Section 3.3: SRI is DRI without DRI 1-2, DRI 2-3 and DRI 3-2."""
    def concat_blocks(net):
        return [layer.name for layer in net.layer if layer.name.endswith("/output")]
    assert concat_blocks(build.deploy("sri")) == ["dri_1_1/output", "dri_2_1/output",
                                                  "dri_2_2/output", "dri_3_1/output"]
    assert len(concat_blocks(build.deploy("dri"))) == 7
    assert len(concat_blocks(build.deploy("shallow_inception"))) == 4


def test_inception_modules_have_no_shortcut():
    """Section 3.3: the Inception variants use the original module, without shortcuts."""
    for variant in ("inception", "shallow_inception"):
        assert not _layers(build.deploy(variant), "Eltwise")[:-1]   # only the sum layer
    assert len(_layers(build.deploy("dri"), "Eltwise")) == 2 * 7 + 1


@pytest.mark.parametrize("form", ["zero_pad", "projection"])
def test_shortcut_adds_the_reduce_output_to_the_branch_end(caffe, tmp_path, form):
    """Section 2.2: an identity shortcut over the 3x3 branch. With the 3x3 convolution
    silenced, the branch end must carry the 1x1 reduce output: zero-padded from 96 to 128
    channels (default), or through the 1x1 projection."""
    net = _net(caffe, tmp_path, build.deploy("dri", shortcut=form), "TEST")
    _unit_batchnorm(net)
    for blob in net.params["dri_1_1/3x3"]:
        blob.data[...] = 0
    net.blobs["data"].data[...] = np.random.default_rng(1).normal(size=(1, 1, 76, 76))
    net.forward()
    reduce = net.blobs["dri_1_1/3x3_reduce"].data
    end = net.blobs["dri_1_1/3x3_residual"].data
    w = paper.TABLE1["dri_1_1"]
    assert end.shape[1] == w.b3x3
    if form == "zero_pad":
        np.testing.assert_allclose(end[:, :w.b3x3_reduce], reduce, rtol=1e-6)
        assert not end[:, w.b3x3_reduce:].any()
        assert "dri_1_1/3x3_shortcut" not in net.params
    else:
        act = net.blobs["dri_1_1/3x3_bn"].data
        weights, bias = (b.data for b in net.params["dri_1_1/3x3_shortcut"])
        proj = np.einsum("oc,nchw->nohw", weights[:, :, 0, 0], act) + bias[None, :, None, None]
        np.testing.assert_allclose(end, proj, rtol=1e-4, atol=1e-5)


def test_aux_heads_pool_5_stride_3_after_stages_1_and_2(caffe, tmp_path):
    """Section 2.1 ('1/3') and ASSUMPTIONS.md N4/N5: average pool 5 stride 3 on the 19x19
    output of DRI 1-2 and the 9x9 output of DRI 2-3."""
    net_param = build.deploy("dri")
    pools = {layer.name: layer for layer in _layers(net_param, "Pooling")}
    for k, block in ((1, "dri_1_2"), (2, "dri_2_3")):
        p = pools[f"loss{k}/ave_pool"]
        assert list(p.bottom) == [f"{block}/output"]
        assert (p.pooling_param.kernel_size, p.pooling_param.stride) == (5, 3)
    net = _net(caffe, tmp_path, net_param, "TEST")
    assert net.blobs["loss1/ave_pool"].data.shape[2:] == (6, 6)
    assert net.blobs["loss2/ave_pool"].data.shape[2:] == (3, 3)
    assert net.blobs["loss3/ave_pool"].data.shape[2:] == (1, 1)


def test_dri_2_3_width_override():
    """ASSUMPTIONS.md N12: the printed 244 can be replaced by the likely 224."""
    net = build.deploy("dri", dri_2_3_1x1=224)
    conv = next(layer for layer in net.layer if layer.name == "dri_2_3/1x1")
    assert conv.convolution_param.num_output == 224


def test_unknown_variant_and_shortcut_are_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        build.deploy("resnet")
    with pytest.raises(ValueError, match="unknown shortcut"):
        build.deploy("dri", shortcut="dense")


def test_aux_heads_can_follow_any_named_block(caffe):
    """N4's other reading: GoogLeNet's loss1/loss2 sit after inception_4a and 4d, i.e. after
    DRI 2-1 and DRI 2-3; both heads then see the 9x9 stage."""
    net_param = build.deploy("dri", aux_after=("dri_2_1", "dri_2_3"))
    pools = {layer.name: layer for layer in _layers(net_param, "Pooling")}
    assert list(pools["loss1/ave_pool"].bottom) == ["dri_2_1/output"]
    assert list(pools["loss2/ave_pool"].bottom) == ["dri_2_3/output"]
    net = proto.load(net_param)
    assert net.blobs["loss1/ave_pool"].data.shape[2:] == (3, 3)
    assert build.aux_blocks("sri") == ("dri_1_1", "dri_2_2")        # the default: stage ends
    with pytest.raises(ValueError, match="dri_2_3, which sri does not have"):
        build.deploy("sri", aux_after=("dri_2_1", "dri_2_3"))
    with pytest.raises(ValueError, match="FC1 must come before FC2"):
        build.deploy("dri", aux_after=("dri_2_3", "dri_2_1"))


def test_main_dropout_and_scale_decay_are_knobs():
    """N6: the main head's dropout (0: none); N17: weight decay of the Scale layers."""
    drops = {layer.name: layer.dropout_param.dropout_ratio
             for layer in _layers(build.train_val("dri", main_dropout=0.7), "Dropout")}
    assert drops["loss3/drop"] == pytest.approx(0.7)
    assert "loss3/drop" not in {layer.name for layer in _layers(build.deploy("dri",
                                                                             main_dropout=0),
                                                                "Dropout")}
    assert all(not layer.param for layer in _layers(build.deploy("dri"), "Scale"))
    scales = _layers(build.deploy("dri", scale_decay_mult=0.0), "Scale")
    assert scales and all([(p.lr_mult, p.decay_mult) for p in layer.param] == [(1, 0), (1, 0)]
                          for layer in scales)
    assert NetOptions(main_dropout=0.7).changed() == {"main_dropout": 0.7}
    with pytest.raises(ValueError):
        NetOptions(main_dropout=1.0)
