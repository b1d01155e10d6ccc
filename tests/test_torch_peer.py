"""The PyTorch peer of `make bench-peer` is DRI as Caffe runs it (issue 20).

net.torch_peer interprets the toolkit's own TRAIN net (build.benchmark: Input layers, the
three weighted losses) layer by layer. Checked against real Caffe (pycaffe) on that message:
the same layer types in the same order, the same learned parameter count (11,911,518, what
describe counts), every blob of the same name with the same shape, and with Caffe's weights
copied in the same forward values. The values are compared in TRAIN (BatchNorm on batch
statistics, the phase the benchmark times) with the two Dropout layers taken out of the
message for both frameworks, since their random masks cannot be shared: max |a - b| / max |a|
per blob within 1e-4, float32 rounding through 33 BatchNorm layers. Then the gradient of the
main classifier's weights, which no BatchNorm amplifies, within the same bound.

Skipped when torch is not installed: it is the optional `.[peer]` extra (a 192 MB wheel),
not on CI's default path.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: it is the optional "
                                            "'.[peer]' extra of 'make bench-peer'")

from dri_hep2 import paper                                  # noqa: E402
from dri_hep2.net import build, proto                       # noqa: E402
from dri_hep2.net.torch_layers import caffe_pooled_size     # noqa: E402
from dri_hep2.net.torch_peer import TorchNet                # noqa: E402

BATCH = 4
REL_BOUND = 1e-4
DRI_LEARNED_PARAMS = 11_911_518          # docs/nets.md, describe's count


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.abs(a).max()) or 1.0
    return float(np.abs(a - b).max()) / scale


def _without_dropout(net_param):
    out = proto.caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    out.layer.extend(layer for layer in net_param.layer if layer.type != "Dropout")
    return out


@pytest.fixture(scope="module")
def pair(caffe):
    """(Caffe TRAIN net, TorchNet) of DRI at batch BATCH without dropout, same weights, both
    run forward on the same seeded batch; Caffe also backward."""
    net_param = _without_dropout(build.benchmark("dri", BATCH))
    caffe.set_random_seed(1701)
    cnet = proto.load(net_param, phase="TRAIN")
    tnet = TorchNet(net_param, "TRAIN")
    tnet.load_caffe({name: [b.data for b in blobs] for name, blobs in cnet.params.items()})
    rng = np.random.default_rng(1701)
    data = (rng.standard_normal((BATCH, 1, paper.INPUT_SIZE, paper.INPUT_SIZE)) * 0.3)
    label = rng.integers(0, paper.NUM_CLASSES, BATCH)
    cnet.blobs["data"].data[...] = data
    cnet.blobs["label"].data[...] = label
    cnet.forward()
    cnet.backward()
    blobs = tnet({"data": torch.tensor(data, dtype=torch.float32),
                  "label": torch.tensor(label, dtype=torch.float32)})
    tnet.total_loss(blobs).backward()
    return cnet, tnet, blobs


def test_same_layers_and_parameter_count(pair):
    cnet, tnet, _ = pair
    caffe_types = [(name, layer.type) for name, layer in zip(cnet._layer_names, cnet.layers)
                   if layer.type not in ("Input", "Split")]
    assert [(name, m.caffe_type) for name, m in tnet.layers.items()] == caffe_types
    caffe_learned = sum(b.data.size for name, blobs in cnet.params.items()
                        for b in blobs if cnet.layer_dict[name].type != "BatchNorm")
    assert tnet.learned_count() == caffe_learned == DRI_LEARNED_PARAMS
    assert tnet.loss_weights == pytest.approx(dict(zip(
        ("loss1/loss", "loss2/loss", "loss3/loss"), paper.LOSS_WEIGHTS)))


def test_every_blob_has_caffes_shape_and_values(pair):
    cnet, _, blobs = pair
    # Caffe's own Split layers (a blob read twice) are the only blobs PyTorch does not need.
    assert set(cnet.blobs) - set(blobs) == {n for n in cnet.blobs if "_split_" in n}
    worst = {}
    for name, t in blobs.items():
        c = cnet.blobs[name].data
        assert tuple(t.shape) == c.shape, name
        worst[name] = _rel(c, t.detach().numpy())
    name = max(worst, key=worst.get)
    print(f"{len(worst)} blobs, worst {name}: {worst[name]:.2e}")
    assert worst[name] <= REL_BOUND, (name, worst[name])
    for top in ("loss1/loss", "loss2/loss", "loss3/loss"):
        assert float(blobs[top].detach()) == pytest.approx(float(cnet.blobs[top].data), rel=REL_BOUND)


def test_main_classifier_gradient_matches(pair):
    cnet, tnet, _ = pair
    fc = tnet.layers["loss3/classifier"].fc
    for caffe_blob, param in zip(cnet.params["loss3/classifier"], (fc.weight, fc.bias)):
        diff = _rel(caffe_blob.diff, param.grad.numpy())
        print(f"loss3/classifier gradient {tuple(param.shape)}: {diff:.2e}")
        assert diff <= REL_BOUND


def test_pooling_where_pytorch_rounds_otherwise_is_refused(caffe):
    """Stride > kernel, no pad: Caffe keeps a last window that starts past the image, PyTorch's
    ceil_mode drops it. The peer says so instead of running another net."""
    ns = caffe.NetSpec()
    ns.data = caffe.layers.Input(shape=dict(dim=[1, 2, 11, 11]))
    ns.pool = caffe.layers.Pooling(ns.data, pool=caffe.params.Pooling.MAX, kernel_size=1,
                                   stride=3)
    net_param = ns.to_proto()
    assert proto.load(net_param).blobs["pool"].data.shape[2:] == (5, 5)
    assert caffe_pooled_size(11, 1, 3, 0, ceil=True) == 5
    with pytest.raises(NotImplementedError, match="Caffe to"):
        TorchNet(net_param, "TEST")
