"""Re-derive Table 1, blob shapes, parameters and FLOPs from a net as Caffe loads it.

Nothing here reads the generator: blocks are found as the Concat layers named
`<block>/output`, their branches by walking the loaded net's graph backwards from each Concat
bottom to the block input, and kernel sizes and counts from the shapes of the weight blobs
Caffe allocated. So the table printed is what Caffe would train, not what we meant to write.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import paper
from . import proto

# Table 1's rows: (branch label, position of the convolution within its branch).
TABLE1_ROWS = (("1 x 1 branch", 0, 0), ("3 x 3 branch", 1, 0), ("", 1, 1),
               ("5 x 5 branch", 2, 0), ("", 2, 1), ("", 2, 2), ("3 x 3 max", 3, 0))
SHORTCUT_MARKS = {"identity": "id", "projection": "proj"}
LEARNED_TYPES = ("Convolution", "InnerProduct", "Scale", "PReLU")


@dataclass
class Branch:
    """One branch of a block: its convolutions in order as (kernel, count), the shortcut
    that joins its end ("" none, "identity", "projection") and the pooling in it ("MAX 3")."""
    convs: list[tuple[int, int]] = field(default_factory=list)
    conv_names: list[str] = field(default_factory=list)
    shortcut: str = ""
    pool: str = ""


@dataclass
class Block:
    name: str          # layer prefix, e.g. dri_1_1
    column: str        # Table 1 column key, e.g. dri_1_1 (also for inception_1_1)
    branches: list[Branch]
    output_channels: int
    output_hw: tuple[int, int]


@dataclass
class Description:
    net: object                     # caffe.Net
    param: object                   # caffe_pb2.NetParameter
    blocks: list[Block]
    layer_flops: dict[str, int]     # per image, forward; 2 x multiply-adds of conv / fc
    layer_params: dict[str, int]    # learned parameters per layer

    @property
    def flops(self) -> int:
        return sum(self.layer_flops.values())

    @property
    def params(self) -> int:
        return sum(self.layer_params.values())

    def table1(self) -> dict[str, list[list[tuple[int, int]]]]:
        """Column key -> branches -> [(kernel, count), ...], in Table 1's order."""
        return {b.column: [br.convs for br in b.branches] for b in self.blocks}


def paper_table1(column: str, inception: bool = False) -> list[list[tuple[int, int]]]:
    """paper.TABLE1's column as branches of (kernel, count); an Inception module of ref. [16]
    has no third convolution in the 5x5 branch."""
    w = paper.TABLE1[column]
    deep = [(1, w.b5x5_reduce), (5, w.b5x5)] + ([] if inception else [(3, w.b5x5_3x3)])
    return [[(1, w.b1x1)], [(1, w.b3x3_reduce), (3, w.b3x3)], deep, [(1, w.pool_proj)]]


def describe(prototxt: str | Path | None = None, net_param=None) -> Description:
    """Load a net (TEST phase) and re-derive its structure. Give a file or a NetParameter."""
    param = net_param if net_param is not None else proto.read(prototxt)
    net = proto.load(param)
    proto_layers = {layer.name: layer for layer in param.layer}
    types = {name: net.layer_dict[name].type for name in net._layer_names}
    blocks = [_block(net, proto_layers, types, name[:-len("/output")])
              for name in net._layer_names
              if name.endswith("/output") and types[name] == "Concat"]
    flops, params = {}, {}
    for name in net._layer_names:
        if types[name] in LEARNED_TYPES:
            params[name] = sum(b.data.size for b in net.params[name])
        if types[name] in ("Convolution", "InnerProduct"):
            flops[name] = _flops(net, name, types[name])
    return Description(net, param, blocks, flops, params)


def _flops(net, name: str, kind: str) -> int:
    """2 x multiply-adds per image: weights x output positions (conv), weights (fc)."""
    weights = net.params[name][0].data.size
    if kind == "InnerProduct":
        return 2 * weights
    top = net.blobs[net.top_names[name][0]].data.shape
    return 2 * weights * top[2] * top[3]


def _block(net, proto_layers, types, prefix: str) -> Block:
    members = [n for n in net._layer_names if n.startswith(prefix + "/")]
    block_input = net.bottom_names[f"{prefix}/input_bn"][0]
    producers: dict[str, list[str]] = {}
    for n in members:
        for top in net.top_names[n]:
            producers.setdefault(top, []).append(n)
    branches = []
    for end in net.bottom_names[f"{prefix}/output"]:
        seen, stack = set(), [end]
        while stack:
            blob = stack.pop()
            if blob == block_input:
                continue
            for layer in producers.get(blob, []):
                if layer not in seen:
                    seen.add(layer)
                    stack.extend(b for b in net.bottom_names[layer] if b != blob)
        ordered = [n for n in members if n in seen]
        branch = Branch()
        for n in ordered:
            if types[n] == "Convolution" and n.endswith("_shortcut"):
                branch.shortcut = "projection"
            elif types[n] == "Convolution":
                shape = net.params[n][0].data.shape
                branch.convs.append((shape[2], shape[0]))
                branch.conv_names.append(n)
            elif types[n] == "Eltwise" and not branch.shortcut:
                branch.shortcut = "identity"
            elif types[n] == "Pooling":
                pp = proto_layers[n].pooling_param
                method = proto.caffe_pb2.PoolingParameter.PoolMethod.Name(pp.pool)
                branch.pool = f"{method} {pp.kernel_size}"
        branches.append(branch)
    out = net.blobs[f"{prefix}/output"].data.shape
    column = "dri" + prefix[prefix.index("_"):]
    return Block(prefix, column, branches, out[1], (out[2], out[3]))


def _cell(kernel_count: tuple[int, int] | None) -> str:
    return "-" if kernel_count is None else f"{kernel_count[0]}x{kernel_count[0]}, {kernel_count[1]}"


def table1_markdown(d: Description) -> str:
    """Table 1 as re-derived, in the paper's layout; a cell that differs from the paper shows
    the paper's value too, as `got (paper: want)`."""
    heads = [paper.TABLE1_HEADINGS[b.column] for b in d.blocks]
    lines = ["| | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for label, branch, pos in TABLE1_ROWS:
        cells = []
        for b in d.blocks:
            inception = len(b.branches[2].convs) == 2
            want_branch = paper_table1(b.column, inception)[branch]
            got_branch = b.branches[branch].convs
            got = got_branch[pos] if pos < len(got_branch) else None
            want = want_branch[pos] if pos < len(want_branch) else None
            cell = _cell(got) if got == want else f"{_cell(got)} (paper: {_cell(want)})"
            if pos == len(got_branch) - 1 and b.branches[branch].shortcut:
                cell += " +" + SHORTCUT_MARKS[b.branches[branch].shortcut]
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| output | " + " | ".join(
        f"{b.output_channels} @ {b.output_hw[0]}x{b.output_hw[1]}" for b in d.blocks) + " |")
    return "\n".join(lines)


def stage_of(layer: str) -> str:
    """The part of the net a layer belongs to: stem, a block, or a classifier head."""
    head = layer.split("/")[0]
    if head.startswith(("conv1", "conv2", "pool1")):
        return "stem"
    return head


def summary_markdown(d: Description) -> str:
    """Output shape, learned parameters and forward GFLOPs per image, part by part."""
    parts: dict[str, list[str]] = {}
    for name in d.net._layer_names:
        parts.setdefault(stage_of(name), []).append(name)
    lines = ["| part | output blob | shape (N x C x H x W) | parameters | MFLOPs / image |",
             "|---|---|---|---:|---:|"]
    for part, names in parts.items():
        tops = [t for n in names for t in d.net.top_names[n] if not n.endswith("_split")]
        if not tops:
            continue
        shape = " x ".join(str(s) for s in d.net.blobs[tops[-1]].data.shape)
        params = sum(d.layer_params.get(n, 0) for n in names)
        flops = sum(d.layer_flops.get(n, 0) for n in names)
        lines.append(f"| {part} | {tops[-1]} | {shape} | {params:,} | {flops / 1e6:,.1f} |")
    lines.append(f"| **total** | | | **{d.params:,}** | **{d.flops / 1e6:,.1f}** |")
    return "\n".join(lines)


def report(d: Description, title: str) -> str:
    return "\n\n".join([
        f"## {title}",
        "Table 1 re-derived from the loaded net (kernel, count; `+id` / `+proj`: an identity "
        "or projection shortcut from the branch's 1x1 joins the branch end):",
        table1_markdown(d),
        "Blob shapes, learned parameters (conv, fc, Scale, PReLU; BatchNorm statistics are "
        "not learned) and FLOPs per image (2 x multiply-adds of conv and fc, forward):",
        summary_markdown(d),
    ])
