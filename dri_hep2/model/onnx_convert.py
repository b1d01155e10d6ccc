"""A deploy net and its weights as one ONNX model: the net's TEST-phase layers, each converted
by dri_hep2.model.onnx_layers (any other type refused by name), outputs named as Caffe names
them (the branch softmaxes, the fused sum), opset and IR version of ledger U4."""
from __future__ import annotations

from pathlib import Path

from .. import ledger
from ..errors import UserError
from ..experiment import evaluate
from ..net import proto
from .onnx_layers import CONVERTERS, Graph, UnsupportedLayer


def onnx_module():
    """The onnx module; a UserError that says how to install it when it is missing."""
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


def convert(net_param, net, *, name: str | None = None, source: str | Path = "deploy",
            extra_outputs: tuple[str, ...] = ()):
    """An onnx.ModelProto of a deploy NetParameter and the loaded caffe.Net holding its weights.

    Layers outside the TEST phase are left out. `source` names the prototxt in messages;
    `extra_outputs` adds inner blobs as outputs (the tests compare every blob with Caffe's).
    """
    onnx = onnx_module()
    helper, TensorProto = onnx.helper, onnx.TensorProto
    layers = [lyr for lyr in net_param.layer if _in_test_phase(lyr)]
    unknown = [(lyr.name, lyr.type) for lyr in layers if lyr.type not in CONVERTERS]
    if unknown:
        raise UnsupportedLayer(
            f"{source}: layer {unknown[0][0]!r} has type {unknown[0][1]!r}, which the ONNX "
            f"converter does not know (it converts {', '.join(CONVERTERS)})")
    g = Graph(onnx, layers, net)
    # Legacy net-level inputs (`input:` + `input_shape`), as older deploy files declare them.
    for k, blob in enumerate(net_param.input):
        dims = (list(net_param.input_shape[k].dim) if k < len(net_param.input_shape)
                else list(net_param.input_dim[4 * k:4 * k + 4]))
        g.inputs.append(helper.make_tensor_value_info(g.fresh(blob), TensorProto.FLOAT,
                                                      ["batch", *dims[1:]]))
    # Who reads which tensor (decides whether a Scale can fold into its BatchNorm).
    versions = dict(g.current)
    for lyr in layers:
        for b in lyr.bottom:
            g.readers[versions.get(b, b)] += 1
        for t in lyr.top:
            versions[t] = f"{t}@{id(lyr)}"
    for lyr in layers:
        if lyr.name not in g.folded:
            CONVERTERS[lyr.type](g, lyr)
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
