"""`make package`: one archive with the Caffe model, the checked ONNX model, the mean and a
model card; what is inside runs without the run folder (issue 10, item 5)."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest

from dri_hep2.model import package, predict
from dri_hep2.experiment.run import RunDir

# Extraction filters came in Python 3.11.4; Debian 12 (the image) has 3.11.2.
_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def test_the_package_holds_a_usable_model_and_its_card(small_run, tmp_path):
    run = RunDir(small_run.run)
    path = package.package(run.path, out=tmp_path / "pkg" / "model.tar.gz")
    name = "dri-run-iter4"
    with tarfile.open(path) as tar:
        names = sorted(tar.getnames())
        tar.extractall(tmp_path / "x", **_FILTER)
    inside = {n.split("/", 1)[1] for n in names}
    assert {n.split("/", 1)[0] for n in names} == {name}
    assert inside >= {"readme.md", "deploy.prototxt", "dri_iter_4.caffemodel",
                      "mean.binaryproto", "mean.npy", "model.onnx", "model.json", "check.json",
                      "train_val.prototxt", "solver.prototxt", "run_manifest.json",
                      "ASSUMPTIONS.md"}
    folder = tmp_path / "x" / name
    weights = run.snapshots / "dri_iter_4.caffemodel"
    assert (folder / "dri_iter_4.caffemodel").read_bytes() == weights.read_bytes()
    assert not any(n.endswith((".png", ".tif", ".mdb")) for n in inside)   # no cells, no LMDB

    card = (folder / "readme.md").read_text()
    front = card.split("---")[1]
    assert "caffemodel: dri_iter_4.caffemodel" in front
    assert f"caffemodel_sha256: {hashlib.sha256(weights.read_bytes()).hexdigest()}" in front
    assert "license: BSD-2-Clause" in front
    for section in ("## What it is", "## Data and protocol", "## Schedule",
                    "## Metrics of this run", "## Choices in force", "## Run manifest",
                    "## Licence", "## Not inside"):
        assert section in card, section
    assert "max_iter" not in card and "4 iterations of batch 24" in card
    assert "| U2 |" in card and "| N13 |" in card and "| B1 |" not in card
    assert "I3A may not be redistributed" in card

    # What a colleague without the run folder does: predict with the unpacked ONNX model.
    listing = tmp_path / "cells.csv"
    ids = ["00001", "00030", "00060"]
    listing.write_text("file\n" + "".join(f"{small_run.i3a / (i + '.png')}\n" for i in ids))
    predict.predict(listing, model_dir=folder, backend="onnx", out=tmp_path / "onnx",
                    progress=False)
    predict.predict(listing, run_dir=run.path, out=tmp_path / "caffe", progress=False)
    rows = [list(csv.DictReader(open(tmp_path / d / "predictions.csv"))) for d in
            ("onnx", "caffe")]
    assert [r["fused_label"] for r in rows[0]] == [r["fused_label"] for r in rows[1]]
    np.testing.assert_allclose([float(r["fused_probability"]) for r in rows[0]],
                               [float(r["fused_probability"]) for r in rows[1]], atol=1e-4)

    # The card's own example, run in the unpacked folder on a cell larger than the input (the
    # example resizes by area averaging), prints the call predict makes.
    code = card.split("```python\n")[1].split("```")[0]
    big = next(i for i in (f"{k:05d}" for k in range(1, 137))
               if min(cv2.imread(str(small_run.i3a / f"{i}.png")).shape[:2]) >= 76)
    shutil.copy(small_run.i3a / f"{big}.png", folder / "cell.png")
    printed = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                             text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    listing.write_text(f"file\n{folder / 'cell.png'}\n")
    predict.predict(listing, model_dir=folder, backend="onnx", out=tmp_path / "one",
                    progress=False)
    row = next(csv.DictReader(open(tmp_path / "one" / "predictions.csv")))
    label, prob = printed.stdout.split()
    assert label == row["fused_label"] and float(prob) == pytest.approx(
        float(row["fused_probability"]), abs=1e-5)

    # Reproducible: the same run packs to the same bytes; the .sha256 beside it says so.
    again = package.package(run.path, out=tmp_path / "pkg2" / "model.tar.gz")
    assert again.read_bytes() == path.read_bytes()
    digest = path.with_name(path.name + ".sha256").read_text().split()[0]
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads((folder / "model.json").read_text())["weights"]["iteration"] == 4
