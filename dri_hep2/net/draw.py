"""Net diagrams with Caffe's own drawing code (caffe.draw: pydot + graphviz)."""
from __future__ import annotations

from pathlib import Path

from .. import atomic
from . import build, proto  # noqa: F401  (proto: caffe.draw needs pycaffe imported first)

# 72 dpi keeps the tallest diagram (DRI, about 230 layers) legible at a third less file size
# than graphviz's default 96.
DPI = 72


def draw_variant(variant: str, path: str | Path, rankdir: str = "TB", **net_options) -> Path:
    """Draw the deploy net of `variant` (every layer of the trained net but the losses) to
    `path`; the format follows the suffix (png, svg, pdf). `net_options` go to build.deploy."""
    from caffe import draw
    graph = draw.get_pydot_graph(build.deploy(variant, **net_options), rankdir)
    graph.set_dpi(DPI)
    path = Path(path)
    with atomic.staged_path(path) as tmp:
        graph.write(str(tmp), format=path.suffix.lstrip(".") or "png")
    return path
