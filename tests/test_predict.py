"""`make predict` through real Caffe and onnxruntime: a cell predicted from its PNG is the same
cell the test LMDB holds, with the same probabilities; with ground truth the metrics are
`make eval`'s; specimens get one call each; bad files stop the tool before anything is
written; the ONNX backend never imports Caffe (issue 10, items 1-3)."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dri_hep2.experiment import evaluate
from dri_hep2.model import backends, predict, specimens
from dri_hep2.data import cells, i3a, lmdb_io
from dri_hep2.data.records import DataError
from dri_hep2.errors import UserError
from dri_hep2.experiment.run import RunDir

REPO = Path(__file__).resolve().parent.parent


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sixteen_bit_tiff_and_bmp_decode_as_the_build_decodes(tmp_path):
    """One decoder for the build and predict: 16-bit PNG and TIFF keep their high byte, colour
    becomes grey, a truncated file is None."""
    rng = np.random.default_rng(0)
    grey16 = rng.integers(0, 65536, size=(60, 70), dtype=np.uint16)
    for name in ("a.png", "a.tif"):
        assert cv2.imwrite(str(tmp_path / name), grey16)
        assert np.array_equal(cells.decode(tmp_path / name), (grey16 >> 8).astype(np.uint8))
    colour = rng.integers(0, 256, size=(50, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.bmp"), colour)
    # imread's own colour conversion rounds differently from cvtColor by at most one level.
    grey = cells.decode(tmp_path / "c.bmp").astype(int)
    assert np.abs(grey - cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)).max() <= 1
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:200])
    assert cells.decode(tmp_path / "cut.png") is None
    assert i3a.decode_png is not None and i3a.decode_png(tmp_path / "a.tif").dtype == np.uint8


def test_a_cell_from_its_png_is_the_cell_of_the_test_lmdb(small_run):
    """Decode + resize of predict give the test LMDB's Datum byte for byte, and the Caffe
    backend gives the probabilities `make eval` computes from the LMDB."""
    run = RunDir(small_run.run)
    entries = {key.decode().split("_", 1)[1]: lmdb_io.decode_datum(value)
               for key, value in lmdb_io.read_lmdb(small_run.data / "lmdb" / "test")}
    ids = sorted(entries)
    files = [small_run.i3a / f"{cell_id}.png" for cell_id in ids]
    views = np.stack([cells.net_view(cells.decode(f)) for f in files])
    lmdb_views = np.stack([entries[i][0][0] for i in ids])
    assert np.array_equal(views, lmdb_views)

    model = backends.CaffeModel(run)
    from_png = model.probabilities(views)
    net = model.net
    transform = evaluate.test_transform(run.train_val, base_dir=run.path)
    outputs, _ = evaluate.branch_outputs(net, lmdb_views[:, None], transform)
    from_lmdb = outputs["prob"]
    assert set(from_png) == {1, 2, 3}
    for b in from_png:
        np.testing.assert_allclose(from_png[b], from_lmdb[b], rtol=0, atol=1e-6)
    # Not a constant net: the cells get different probabilities.
    assert np.ptp(from_png[3], axis=0).max() > 1e-3


def test_predict_on_the_test_split_gives_the_metrics_of_make_eval(small_run, tmp_path):
    result = evaluate.evaluate(small_run.run, small_run.data)
    summary = predict.predict(small_run.i3a, run_dir=small_run.run, out=tmp_path / "out",
                              split="test", batch_size=10, progress=False)
    out = tmp_path / "out"
    got = json.loads((out / "metrics.json").read_text())
    assert summary["n"] == got["n"] == result["n"] == 28
    assert got["mca"] == pytest.approx(result["mca"]) and got["aca"] == pytest.approx(result["aca"])
    assert got["confusion"] == result["confusion"]
    # The same intervals too: one seed, the same specimens, whatever order the cells came in.
    assert got["mca_ci"] == pytest.approx(result["mca_ci"])
    assert got["aca_ci"] == pytest.approx(result["aca_ci"])
    for combo, scores in result["combos"].items():
        assert got["combos"][combo]["mca"] == pytest.approx(scores["mca"])
    rows = read_csv(out / "predictions.csv")
    assert len(rows) == 28
    classes = list(RunDir(small_run.run).class_names())
    for row in rows:
        fused = np.array([float(row[f"fused_{c}"]) for c in classes])
        branches = [np.array([float(row[f"fc{b}_{c}"]) for c in classes]) for b in (1, 2, 3)]
        # The sum layer divided by 3 (ledger U1): a distribution whose arg-max is the call.
        np.testing.assert_allclose(fused, sum(branches) / 3, atol=2e-6)
        assert fused.sum() == pytest.approx(1, abs=1e-5)
        assert row["fused_label"] == classes[int(fused.argmax())]
        assert float(row["fused_probability"]) == pytest.approx(fused.max(), abs=1e-6)
        assert row["correct"] == str(int(row["label"] == row["fused_label"]))
    # Specimens from the CSV's Specimen ID column; one call each, MCA beside the cell MCA.
    specimens = read_csv(out / "specimens.csv")
    gt = {r["Image ID"]: r["Specimen ID"] for r in read_csv(small_run.i3a / "gt_training.csv")}
    assert {s["specimen"] for s in specimens} == {gt[r["id"]] for r in rows}
    assert sum(int(s["cells"]) for s in specimens) == 28
    assert got["specimen"]["n"] == len(specimens) and got["specimen"]["rule"] == "mean"
    assert 0 <= got["specimen"]["mca"] <= 1
    assert json.loads((out / "predict.json").read_text())["cells_per_second"] > 0


def test_specimen_rules_mean_and_vote():
    """Two cells fairly sure of class 0, one very sure of class 1: the vote says 0, the mean of
    the probabilities says 1 (ledger U2); the votes column is the share of the call."""
    fused = np.array([[0.55, 0.45, 0, 0, 0, 0], [0.55, 0.45, 0, 0, 0, 0],
                      [0.0, 1.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1.0]])
    spec = ["a", "a", "a", None]
    mean = specimens.specimen_calls(spec, fused, "mean")
    vote = specimens.specimen_calls(spec, fused, "vote")
    assert list(mean) == ["a"]                       # a cell without specimen is in none
    assert (mean["a"]["call"], vote["a"]["call"]) == (1, 0)
    assert mean["a"]["votes"] == pytest.approx(1 / 3) and vote["a"]["votes"] == pytest.approx(2 / 3)
    with pytest.raises(UserError, match="specimen rule"):
        specimens.specimen_calls(spec, fused, "median")


def _cell_folder(small_run, root: Path) -> Path:
    """A folder of cells as a lab has them: one sub-folder per specimen, 16-bit TIFFs beside
    8-bit PNGs (the same grey levels in the high byte)."""
    for k, cell_id in enumerate(("00001", "00002", "00003", "00030")):
        img = cv2.imread(str(small_run.i3a / f"{cell_id}.png"), cv2.IMREAD_GRAYSCALE)
        folder = root / ("slide_a" if k < 2 else "slide_b")
        folder.mkdir(parents=True, exist_ok=True)
        if k % 2:
            cv2.imwrite(str(folder / f"{cell_id}.tif"), img.astype(np.uint16) << 8)
        else:
            cv2.imwrite(str(folder / f"{cell_id}.png"), img)
    return root


def test_a_folder_per_specimen_without_labels(small_run, tmp_path):
    images = _cell_folder(small_run, tmp_path / "cells")
    summary = predict.predict(images, run_dir=small_run.run, out=tmp_path / "out",
                              progress=False)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert [r["id"] for r in rows] == ["slide_a/00001", "slide_a/00002", "slide_b/00003",
                                      "slide_b/00030"]
    assert [r["specimen"] for r in rows] == ["slide_a", "slide_a", "slide_b", "slide_b"]
    assert "label" not in rows[0] and not (tmp_path / "out" / "metrics.json").exists()
    specimens = read_csv(tmp_path / "out" / "specimens.csv")
    assert [s["specimen"] for s in specimens] == ["slide_a", "slide_b"]
    assert summary["n"] == 4 and "mca" not in summary
    one = predict.predict(images / "slide_b" / "00030.tif", run_dir=small_run.run,
                          out=tmp_path / "one", progress=False)
    assert one["n"] == 1 and read_csv(tmp_path / "one" / "predictions.csv")[0]["id"] == "00030"
    # The 16-bit TIFFs are predicted as the 8-bit PNGs they were made from.
    listing = tmp_path / "originals.csv"
    listing.write_text("file\n" + "".join(f"{small_run.i3a / (r['id'][-5:] + '.png')}\n"
                                           for r in rows))
    predict.predict(listing, run_dir=small_run.run, out=tmp_path / "ref", progress=False)
    for r, s in zip(rows, read_csv(tmp_path / "ref" / "predictions.csv")):
        assert r["fused_label"] == s["fused_label"]
        assert all(abs(float(r[k]) - float(s[k])) < 1e-6 for k in r if k.startswith("fc"))


def test_a_bad_file_stops_predict_before_anything_is_written(small_run, tmp_path):
    good = small_run.i3a / "00001.png"
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:100])
    listing = tmp_path / "cells.csv"
    listing.write_text(f"file,label,specimen\n{good},Homogeneous,s1\ncut.png,Speckled,s1\n"
                       "missing.png,Golgi,s2\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"cut\.png:3: unreadable or truncated image"):
        predict.predict(listing, run_dir=small_run.run, out=out, progress=False)
    assert not out.exists()
    summary = predict.predict(listing, run_dir=small_run.run, out=out, skip_bad=True,
                              progress=False)
    assert summary["n"] == 1 and summary["skipped"] == 2
    skipped = read_csv(out / "skipped.csv")
    assert [(Path(s["file"]).name, s["line"], s["reason"]) for s in skipped] == [
        ("cut.png", "3", "unreadable or truncated image"), ("missing.png", "4", "no such file")]
    assert [r["id"] for r in read_csv(out / "predictions.csv")] == [str(good.with_suffix(""))]


def test_a_csv_without_a_file_column_and_an_unknown_label(small_run, tmp_path):
    listing = tmp_path / "cells.csv"
    listing.write_text("Image ID,Image class\n1,Homogeneous\n")
    with pytest.raises(DataError, match="no 'file' column"):
        predict.predict(listing, run_dir=small_run.run, out=tmp_path / "o", progress=False)
    listing.write_text(f"file,label\n{small_run.i3a / '00001.png'},Cytoplasmic\n")
    with pytest.raises(DataError, match="unknown class label 'Cytoplasmic'"):
        predict.predict(listing, run_dir=small_run.run, out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


# A blocker for any import of pycaffe, and a check of sys.modules after the tool ran.
_NO_CAFFE = """
import importlib.abc, runpy, sys
class NoCaffe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "caffe" or name.startswith("caffe."):
            raise ImportError("pycaffe is blocked in this test")
sys.meta_path.insert(0, NoCaffe())
sys.argv = ["predict.py"] + sys.argv[1:]
try:
    runpy.run_path("tools/predict.py", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
loaded = sorted(m for m in sys.modules if m == "caffe" or m.startswith("caffe."))
assert not loaded, loaded
assert "onnxruntime" in sys.modules
print("NO-CAFFE-OK")
"""


def test_the_onnx_backend_runs_without_caffe_and_agrees(small_run, tmp_path):
    from dri_hep2.model import onnx_export

    export_dir = tmp_path / "export"
    onnx_export.export(small_run.run, out=export_dir)
    caffe_out, onnx_out = tmp_path / "caffe", tmp_path / "onnx"
    predict.predict(small_run.i3a, run_dir=small_run.run, out=caffe_out, split="test",
                    progress=False)
    proc = subprocess.run(
        [sys.executable, "-c", _NO_CAFFE, "--images", str(small_run.i3a), "--backend", "onnx",
         "--model", str(export_dir), "--out", str(onnx_out), "--no-progress",
         "--run-dir", str(small_run.run), "--split", "test"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "NO-CAFFE-OK" in proc.stdout, proc.stderr + proc.stdout
    a, b = read_csv(caffe_out / "predictions.csv"), read_csv(onnx_out / "predictions.csv")
    assert [r["fused_label"] for r in a] == [r["fused_label"] for r in b]
    diff = max(abs(float(r[k]) - float(s[k])) for r, s in zip(a, b) for k in r
               if k.startswith(("fc", "fused_")) and k != "fused_label")
    assert diff < 1e-4
    assert json.loads((onnx_out / "predict.json").read_text())["backend"] == "onnx"
    assert (json.loads((onnx_out / "metrics.json").read_text())["mca"]
            == json.loads((caffe_out / "metrics.json").read_text())["mca"])
    # RUN_DIR's own export/ must be of the run's newest snapshot, or predict says so.
    shutil.copytree(export_dir, RunDir(small_run.run).export, dirs_exist_ok=True)
    info = json.loads((export_dir / "model.json").read_text())
    info["weights"]["file"] = "dri_iter_2.caffemodel"
    (RunDir(small_run.run).export / "model.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match="newest snapshot is dri_iter_4.caffemodel"):
        predict.predict(small_run.i3a, run_dir=small_run.run, backend="onnx",
                        out=tmp_path / "stale", progress=False)
    shutil.rmtree(RunDir(small_run.run).export)


def test_the_tools_fail_in_one_line_naming_what_to_run(tmp_path):
    from test_tools_cli import one_line_error, run_tool

    out = run_tool("predict.py", "--images", str(tmp_path / "nothing"), "--run-dir",
                   str(tmp_path / "run"))
    one_line_error(out, "predict.py", f"no run folder {tmp_path / 'run'}", "make train")
    (tmp_path / "cells").mkdir()
    cv2.imwrite(str(tmp_path / "cells" / "1.png"), np.zeros((60, 60), np.uint8))
    out = run_tool("predict.py", "--images", str(tmp_path / "cells"), "--backend", "onnx",
                   "--model", str(tmp_path / "export"), "--out", str(tmp_path / "o"))
    one_line_error(out, "predict.py", "model.onnx missing", "make export")
    out = run_tool("export_onnx.py", "--run-dir", str(tmp_path / "run"))
    one_line_error(out, "export_onnx.py", "no run folder", "make train")
    out = run_tool("package.py", "--run-dir", str(tmp_path / "run"))
    one_line_error(out, "package.py", "no run folder")
    out = run_tool("explain.py", "--run-dir", str(tmp_path / "run"))
    one_line_error(out, "explain.py", "no run folder")
    assert not (tmp_path / "o").exists()
