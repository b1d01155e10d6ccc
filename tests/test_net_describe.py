"""The describe tool re-derives Table 1 from the nets Caffe loads (Table 1, section 2.2)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dri_hep2 import paper
from dri_hep2.folders import REPO_ROOT
from dri_hep2.net import build, describe


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_rederived_table1_equals_the_papers_cell_by_cell(variant):
    """Table 1: every kernel size and count of every branch of every block, as loaded."""
    d = describe.describe(REPO_ROOT / "prototxt" / f"{variant}_deploy.prototxt")
    got = d.table1()
    kept = [c for stage in build.stages(variant) for c in stage]
    assert list(got) == kept
    inception = build.is_inception(variant)
    for column in kept:
        want = describe.paper_table1(column, inception)
        for branch, (got_branch, want_branch) in enumerate(zip(got[column], want)):
            assert got_branch == want_branch, (column, branch)
    for block in d.blocks:
        shortcuts = [br.shortcut for br in block.branches]
        assert shortcuts == (["", "", "", ""] if inception
                             else ["", "identity", "identity", ""]), block.name
        assert block.branches[3].pool == "MAX 3"


def test_table_marks_a_cell_that_differs_from_the_paper():
    """N12: with DRI 2-3's 1x1 set to 224 the describe table shows the printed 244 beside."""
    d = describe.describe(net_param=build.deploy("dri", dri_2_3_1x1=224))
    assert "1x1, 224 (paper: 1x1, 244)" in describe.table1_markdown(d)
    assert "(paper:" not in describe.table1_markdown(
        describe.describe(net_param=build.deploy("dri")))


def test_projection_shortcut_is_reported_and_adds_parameters():
    plain = describe.describe(net_param=build.deploy("dri"))
    proj = describe.describe(net_param=build.deploy("dri", shortcut="projection"))
    assert [br.shortcut for br in proj.blocks[0].branches][1:3] == ["projection"] * 2
    assert proj.table1() == plain.table1()
    extra = sum((w.b3x3_reduce * w.b3x3 + w.b3x3) + (w.b5x5_reduce * w.b5x5_3x3 + w.b5x5_3x3)
                for w in paper.TABLE1.values())
    assert proj.params - plain.params == extra


def test_flops_and_params_of_the_first_convolution():
    """conv1/7x7_s2 (ASSUMPTIONS.md N1): 64 kernels of 7x7 on 76x76 grey, stride 2 -> 38x38."""
    d = describe.describe(net_param=build.deploy("dri"))
    assert d.layer_params["conv1/7x7_s2"] == 64 * 49 + 64
    assert d.layer_flops["conv1/7x7_s2"] == 2 * (64 * 49) * 38 * 38
    assert d.flops > sum(d.layer_flops[n] for n in d.layer_flops if n.startswith("dri_1_1/"))


def test_describe_tool_prints_the_table():
    out = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "describe_net.py"),
                          "--net", "sri"], capture_output=True, text=True, check=True).stdout
    assert "| 3 x 3 max | 1x1, 32 | 1x1, 64 | 1x1, 64 | 1x1, 128 |" in out
    assert "**total**" in out
