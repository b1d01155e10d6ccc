"""Class lists (issue 11, item 1): the paper's six stay I3A's labels; other lists are read by
spelling, recorded in data and run manifests, and set the nets' classifier width in Caffe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dri_hep2 import classes, paper
from dri_hep2.data.folder import DataFolder
from dri_hep2.net import build, proto
from dri_hep2.experiment.run import RunDir


def test_i3a_is_the_papers_table2_order_and_task2_extends_it():
    assert classes.I3A.names == paper.CLASSES and classes.I3A.abbrev == paper.CLASS_ABBREV
    assert [classes.I3A.label(n) for n in paper.CLASSES] == list(range(6))
    # Task 2's first six labels are I3A's, so a label means the same class in both.
    assert classes.I3A_TASK2.names[:6] == paper.CLASSES and len(classes.I3A_TASK2) == 7
    assert len(classes.ICPR2012) == 6


@pytest.mark.parametrize("cls,spelling,label", [
    (classes.I3A, "Nuclear membrane", 4), (classes.I3A, "NUMEM", 4), (classes.I3A, "golgi", 5),
    (classes.ICPR2012, "fine speckled", 1), (classes.ICPR2012, "Coarse_Speckled", 2),
    (classes.ICPR2012, "cytoplasmic", 5), (classes.ICPR2012, "cytoplasmatic", 5),
    (classes.I3A_TASK2, "mitotic spindle", 6), (classes.I3A_TASK2, "MitoticSp", 6)])
def test_spellings(cls, spelling, label):
    assert cls.label(spelling) == label


def test_unknown_spelling_names_the_expected_ones():
    with pytest.raises(ValueError, match="unknown class label 'speckled' .*Fine speckled"):
        classes.ICPR2012.label("speckled")


def test_custom_lists_get_unique_abbreviations_and_survive_the_manifest():
    custom = classes.custom(["fine speckled", "homogeneous", "homogeneous-2", "ho"])
    assert custom.abbrev == ("FS", "Hom", "H2", "ho")
    assert classes.ClassList.from_manifest(custom.manifest()) == custom
    assert classes.ClassList.from_manifest(classes.ICPR2012.manifest()) is classes.ICPR2012
    assert classes.ClassList.from_manifest(None) is classes.I3A
    with pytest.raises(ValueError, match="differ"):
        classes.custom(["a b", "A-B"])


def test_folders_and_runs_without_a_recorded_list_are_i3a(tmp_path):
    """Data folders and runs made before class lists were recorded hold I3A's six."""
    assert DataFolder(tmp_path).classes() is classes.I3A
    assert RunDir(tmp_path).classes() is classes.I3A
    (tmp_path / "manifest.json").write_text(json.dumps({"class_order": list(paper.CLASSES)}))
    assert DataFolder(tmp_path).classes() is classes.I3A
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"classes": classes.I3A_TASK2.manifest()}))
    (tmp_path / "run_manifest.json").write_text(json.dumps(
        {"classes": classes.ICPR2012.manifest()}))
    assert DataFolder(tmp_path).classes() is classes.I3A_TASK2
    assert RunDir(tmp_path).classes() is classes.ICPR2012


def test_classifier_width_follows_the_class_list_and_defaults_to_six(caffe, tmp_path):
    """Caffe builds the deploy net with seven outputs per branch (Task 2), and the default is
    the paper's six (the committed prototxts regenerate unchanged: test_net_regenerate)."""
    def widths(net_param):
        return {layer.name: layer.inner_product_param.num_output for layer in net_param.layer
                if layer.name.endswith("/classifier")}
    assert set(widths(build.deploy("sri")).values()) == {paper.NUM_CLASSES}
    assert set(widths(build.train_val("sri", num_classes=4)).values()) == {4}
    assert set(widths(build.benchmark("sri", num_classes=4)).values()) == {4}
    path = tmp_path / "deploy.prototxt"
    path.write_text(proto.to_text(build.deploy("sri", num_classes=7)))
    net = caffe.Net(str(path), caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(size=(1, 1, 76, 76))
    net.forward()
    for blob in ("loss1/prob", "loss2/prob", "loss3/prob", "prob"):
        assert net.blobs[blob].data.shape == (1, 7)
