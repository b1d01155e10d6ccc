"""The other layouts `make data` reads (issue 11, item 2), each on a synthetic replica in its
exact on-disk form: detection (printed) and FORMAT=, class lists and counts, Task 2's cutting
knobs, the class-balanced rotation rule, and bad input refused with file and line, exit 2 and
nothing written (or left out and listed with --skip-bad)."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dri_hep2 import classes, cli, paper
from dri_hep2.data import (augment, build, class_folders, formats, i3a, i3a_task2, replicas,
                           synthetic)
from dri_hep2.data.folder import DataFolder
from dri_hep2.data.records import DataError, ReaderOptions

TOOL = Path(__file__).resolve().parent.parent / "tools" / "make_data.py"
_spec = importlib.util.spec_from_file_location("make_data", TOOL)
make_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_data)

GRID = (2, 3)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """One small replica of each layout (made once; tests that spoil one copy it first)."""
    root = tmp_path_factory.mktemp("replicas")
    return {
        "i3a": synthetic.make_replica(root / "i3a", scale=0.005, progress=False, montage=False),
        "icpr2012": replicas.make_icpr2012(root / "icpr2012", scale=0.02),
        "i3a-task2": replicas.make_task2(root / "task2", specimens_per_class=2,
                                         images_per_specimen=2, grid=GRID),
        "folders": replicas.make_folders(root / "folders", per_class=9, specimens_per_class=3),
    }


@pytest.fixture
def copy(made, tmp_path):
    def _copy(name: str) -> Path:
        return Path(shutil.copytree(made[name], tmp_path / name))
    return _copy


@pytest.mark.parametrize("name,title", [(k, v) for k, v in formats.FORMATS.items()])
def test_each_layout_is_detected_and_said(made, name, title):
    said = []
    cells = formats.read_cells(made[name], announce=said.append)
    assert cells.format == name and said[0].startswith(f"reading {made[name]} as {title} (")


def test_icpr2012_replica_reads_the_contests_classes_in_order(made):
    cells = formats.read_cells(made["icpr2012"], announce=None)
    assert cells.classes is classes.ICPR2012
    counts = tuple(max(1, round(n * 0.02)) for n in replicas.ICPR2012_COUNTS)
    assert tuple(sum(r.label == c for r in cells.records) for c in range(6)) == counts
    text = (made["icpr2012"] / replicas.ICPR2012_CSV).read_text().splitlines()
    assert text[0] == "ID;pattern" and text[1] == "001;homogeneous"
    assert {line.split(";")[1] for line in text[1:]} == {
        "homogeneous", "fine speckled", "coarse speckled", "nucleolar", "centromere",
        "cytoplasmatic"}
    first = cells.records[0]
    assert (first.id, first.image.name, first.mask.name) == ("001", "001.png", "001_mask.png")
    # The replica's cells are 3-channel, as the contest's colour images: decoded to grey.
    assert cv2.imread(str(first.image), cv2.IMREAD_UNCHANGED).ndim == 3
    assert i3a.decode_png(first.image).ndim == 2


def test_icpr2012_extra_columns_give_specimens(copy):
    root = copy("icpr2012")
    csv_path = root / replicas.ICPR2012_CSV
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([lines[0] + ";image;intensity"] + [
        f"{line};img{int(line.split(';')[0]) % 4};positive" for line in lines[1:]]) + "\n")
    cells = formats.read_cells(root, announce=None)
    assert {r.specimen for r in cells.records} == {f"img{k}" for k in range(4)}
    assert {r.intensity for r in cells.records} == {"positive"}


def test_task2_cells_are_the_masks_components_with_specimen_and_label(made):
    cells = formats.read_cells(made["i3a-task2"], announce=None)
    assert cells.classes is classes.I3A_TASK2 and cells.layout == "i3a-task2"
    per_image = GRID[0] * GRID[1]
    # 7 classes x 2 specimens x 2 images, each image's grid cells: the border cell and the
    # debris speck the replica adds are not cells.
    assert len(cells.records) == 7 * 2 * 2 * per_image
    assert [sum(r.label == c for r in cells.records) for c in range(7)] == [4 * per_image] * 7
    csv_rows = (made["i3a-task2"] / replicas.TASK2_CSV).read_text().splitlines()
    assert csv_rows[0] == "Specimen ID,Pattern,Intensity" and csv_rows[-1].startswith(
        "00014,MitoticSp,")
    by_specimen: dict[str, set[int]] = {}
    for r in cells.records:
        by_specimen.setdefault(r.specimen, set()).add(r.label)
        assert r.image.name.startswith(r.specimen + "_") and r.box is not None
    assert len(by_specimen) == 14 and all(len(v) == 1 for v in by_specimen.values())
    # A cut-out: the box around the component plus the padding, inside the image.
    rec = cells.records[0]
    mask = i3a.decode_png(rec.mask)
    x, y, w, h = rec.box
    assert mask[y:y + h, x:x + w].any() and not mask[y, x:x + w].any()
    images, errors = i3a.load_images(cells.records[:per_image + 1])
    assert not errors and all(img.shape == (r.box[3], r.box[2])
                              for img, r in zip(images, cells.records))


def test_task2_knobs_padding_min_area_and_border_cells(made):
    mask = i3a.decode_png(sorted(made["i3a-task2"].glob("*_Mask.tif"))[0])
    default = i3a_task2.cell_boxes(mask)
    assert len(default) == GRID[0] * GRID[1]
    with_border = i3a_task2.cell_boxes(mask, ReaderOptions(keep_border_cells=True))
    assert len(with_border) == len(default) + 1
    with_debris = i3a_task2.cell_boxes(mask, ReaderOptions(min_cell_area=1,
                                                           keep_border_cells=True))
    assert len(with_debris) == len(default) + 2
    tight = i3a_task2.cell_boxes(mask, ReaderOptions(cell_padding=0))
    assert [(x - 4, y - 4, w + 8, h + 8) for x, y, w, h in tight] == default


def test_folder_layout_any_class_list_sorted_and_specimens(made):
    cells = formats.read_cells(made["folders"], announce=None)
    assert cells.classes.key == "custom"
    assert cells.classes.names == ("centromere", "homogeneous", "nucleolar", "speckled")
    assert {r.image.suffix for r in cells.records} == {".png", ".tif", ".bmp"}
    assert all(r.id.startswith(cells.classes.names[r.label] + "/") for r in cells.records)
    assert len({r.specimen for r in cells.records}) == 4 * 3


def test_folder_layout_of_a_known_class_list_keeps_its_labels(tmp_path):
    """An I3A copy kept as class folders gets I3A's labels (and the paper's six-class nets)."""
    ok, png = cv2.imencode(".png", np.full((20, 20), 40, np.uint8))
    for name in ("golgi", "Homogeneous", "speckled", "nucleolar", "centromere",
                 "Nuclear membrane"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.png").write_bytes(png.tobytes())
    cells = formats.read_cells(tmp_path, announce=None)
    assert cells.classes is classes.I3A
    assert {r.id: r.label for r in cells.records}["golgi/1"] == paper.GOLGI


def test_format_can_be_forced_and_a_wrong_one_says_why(made):
    said = []
    cells = formats.read_cells(made["folders"], "folders", announce=said.append)
    assert "as asked (FORMAT=)" in said[0] and cells.format == "folders"
    with pytest.raises(DataError, match="no gt_training.csv here"):
        formats.read_cells(made["folders"], "i3a", announce=None)
    with pytest.raises(DataError, match="unknown format 'dicom'"):
        formats.read_cells(made["folders"], "dicom", announce=None)


# --- the rotation rule (ledger C5) ---------------------------------------------------------------
def test_i3a_keeps_the_papers_steps_and_table2_whatever_the_counts():
    steps = augment.class_steps(classes.I3A, paper.I3A_COUNTS)
    assert steps == (18, 18, 18, 18, 18, 6)
    assert augment.augmented_counts(paper.TRAIN_COUNTS, steps) == paper.AUGMENTED_COUNTS
    assert augment.class_steps(classes.I3A, (1, 1, 1, 1, 1, 1)) == steps
    # The general rule gives the paper's steps on I3A's counts too.
    task2_like = classes.custom(paper.CLASSES)
    assert augment.class_steps(task2_like, paper.I3A_COUNTS) == steps


def test_other_lists_balance_by_the_largest_class():
    counts = replicas.ICPR2012_COUNTS            # H 345, FS 225, CS 239, N 257, C 388, Cy 128
    assert augment.class_steps(classes.ICPR2012, counts) == (18, 18, 18, 18, 18, 6)
    assert augment.class_steps(classes.custom("abcd"), (100, 51, 34, 33)) == (18, 18, 9, 6)
    assert augment.class_steps(classes.custom("ab"), (90, 10), base=24) == (24, 8)
    with pytest.raises(cli.UserError, match="cannot be divided by 2"):
        augment.class_steps(classes.custom("ab"), (90, 45), base=15)


def test_build_records_the_class_list_and_the_rule(made, tmp_path):
    m = build.build_dataset(made["icpr2012"], tmp_path / "data", progress=False, workers=2,
                            announce=None)
    assert m["classes"] == classes.ICPR2012.manifest()
    assert m["class_order"] == list(classes.ICPR2012.names)
    assert m["parameters"]["reader"] == {"format": "icpr2012"}
    steps = m["parameters"]["rotation_steps_deg"]
    train = m["splits"]["train"]
    assert train["per_class"] == [n * 360 // s for n, s in zip(train["cells_per_class"], steps)]
    assert DataFolder(tmp_path / "data").classes() is classes.ICPR2012
    rows = DataFolder(tmp_path / "data").read_split("test")
    assert {r["class"] for r in rows} <= set(classes.ICPR2012.names)
    with pytest.raises(cli.UserError, match="2 rotation steps given for 6 classes"):
        build.build_dataset(made["icpr2012"], tmp_path / "bad", steps=(18, 6),
                            progress=False, announce=None)


def test_an_i3a_build_keeps_its_parameters_and_hash(made, tmp_path):
    """The I3A parameters (hashed into build_hash) have no reader or fold keys, so data folders
    built before other layouts existed stay up to date."""
    m = build.build_dataset(made["i3a"], tmp_path / "data", progress=False, workers=2,
                            announce=None)
    assert set(m["parameters"]) == {"protocol", "seed", "rotation_steps_deg", "border",
                                    "stretch", "input_size", "rotation_interpolation",
                                    "resize_interpolation", "skip_bad", "format"}
    assert m["classes"]["key"] == "i3a" and m["class_order"] == list(paper.CLASSES)


# --- bad input ------------------------------------------------------------------------------------
def _spoil(kind: str, root: Path) -> str:
    """Spoil a copy of a replica one way; return the text the error must contain."""
    if kind.startswith("icpr"):
        csv_path = root / replicas.ICPR2012_CSV
        lines = csv_path.read_text().splitlines()
        if kind == "icpr unknown label":
            lines[2] = "002;speckled"
            csv_path.write_text("\n".join(lines) + "\n")
            return f"{csv_path}:3: unknown class label 'speckled'"
        if kind == "icpr missing image":
            (root / "003.png").unlink()
            return f"{csv_path}:4: image file 003.png missing"
        if kind == "icpr duplicate":
            csv_path.write_text("\n".join(lines + ["2;nucleolar"]) + "\n")
            return f"{csv_path}:{len(lines) + 1}: duplicate image ID 2 (first on line 3)"
        if kind == "icpr no header":
            csv_path.write_text("\n".join(lines[1:]) + "\n")
            return f"{csv_path}:1: missing header: first row is '001;homogeneous'"
        if kind == "icpr commas":
            csv_path.write_text("\n".join(line.replace(";", ",") for line in lines) + "\n")
            return f"{csv_path}:1: not semicolon-separated"
        if kind == "icpr image without row":
            shutil.copy(root / "001.png", root / "999.png")
            return f"{root / '999.png'}: image has no row in {replicas.ICPR2012_CSV}"
        if kind == "icpr truncated":
            data = (root / "004.png").read_bytes()
            (root / "004.png").write_bytes(data[:len(data) // 2])
            return f"{root / '004.png'}: unreadable or truncated PNG"
    if kind.startswith("task2"):
        csv_path = root / replicas.TASK2_CSV
        lines = csv_path.read_text().splitlines()
        if kind == "task2 unknown pattern":
            lines[3] = "00003,Cytoplasmatic,positive"
            csv_path.write_text("\n".join(lines) + "\n")
            return f"{csv_path}:4: unknown class label 'Cytoplasmatic'"
        if kind == "task2 specimen without images":
            for p in root.glob("00005_*"):
                p.unlink()
            return f"{csv_path}:6: specimen 00005 has no image here"
        if kind == "task2 image without specimen":
            shutil.copy(root / "00001_1.tif", root / "00099_1.tif")
            shutil.copy(root / "00001_1_Mask.tif", root / "00099_1_Mask.tif")
            return f"{root / '00099_1.tif'}: specimen '00099' of this image has no row"
        if kind == "task2 missing mask":
            (root / "00002_2_Mask.tif").unlink()
            return f"{root / '00002_2.tif'}: mask 00002_2_Mask.tif missing"
        if kind == "task2 truncated image":
            data = (root / "00004_1.tif").read_bytes()
            (root / "00004_1.tif").write_bytes(data[:len(data) // 3])
            return f"{root / '00004_1.tif'}: unreadable or truncated image"
        if kind == "task2 duplicate specimen":
            csv_path.write_text("\n".join(lines + ["1,Golgi"]) + "\n")
            return f"{csv_path}:{len(lines) + 1}: duplicate specimen ID 1 (first on line 2)"
    if kind.startswith("folders"):
        csv_path = root / class_folders.SPECIMENS_CSV
        lines = csv_path.read_text().splitlines()
        first = root / lines[1].split(",")[0]
        if kind == "folders duplicate stem":
            shutil.copy(first, first.with_suffix(".bmp" if first.suffix != ".bmp" else ".png"))
            return "duplicate cell ID " + f"{first.parent.name}/{first.stem}"
        if kind == "folders specimen row of no image":
            csv_path.write_text("\n".join(lines + ["nucleolar/nothing.png,x"]) + "\n")
            return f"{csv_path}:{len(lines) + 1}: no image 'nucleolar/nothing.png'"
        if kind == "folders image without specimen":
            csv_path.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
            return f"{first}: image has no row in specimens.csv"
        if kind == "folders truncated":
            first.write_bytes(first.read_bytes()[:40])
            return f"{first}: unreadable or truncated"
    raise AssertionError(kind)


BAD = {"icpr2012": ["icpr unknown label", "icpr missing image", "icpr duplicate",
                    "icpr no header", "icpr commas", "icpr image without row", "icpr truncated"],
       "i3a-task2": ["task2 unknown pattern", "task2 specimen without images",
                     "task2 image without specimen", "task2 missing mask",
                     "task2 truncated image", "task2 duplicate specimen"],
       "folders": ["folders duplicate stem", "folders specimen row of no image",
                   "folders image without specimen", "folders truncated"]}


@pytest.mark.parametrize("name,kind", [(n, k) for n, kinds in BAD.items() for k in kinds])
def test_bad_input_is_refused_with_its_place_and_nothing_written(copy, name, kind, tmp_path,
                                                                 capsys):
    root = copy(name)
    expected = _spoil(kind, root)
    data_dir = tmp_path / "data"
    rc = cli.run(make_data.main, ["--i3a", str(root), "--data-dir", str(data_dir), "--quiet",
                                  "--format", name])
    err = capsys.readouterr().err
    assert rc == 2 and expected in err, err
    assert "nothing was written" in err and len(err.strip().splitlines()) == 1
    assert not data_dir.exists() or not any(data_dir.rglob("*"))


@pytest.mark.parametrize("name", list(BAD))
def test_skip_bad_leaves_the_bad_items_out_and_lists_them(copy, name, tmp_path):
    root = copy(name)
    kinds = {"icpr2012": ["icpr unknown label", "icpr missing image", "icpr image without row",
                          "icpr truncated"],
             "i3a-task2": ["task2 unknown pattern", "task2 image without specimen",
                           "task2 missing mask"],
             "folders": ["folders duplicate stem", "folders image without specimen",
                         "folders truncated"]}[name]
    for kind in kinds:
        _spoil(kind, root)
    data_dir = tmp_path / "data"
    assert cli.run(make_data.main, ["--i3a", str(root), "--data-dir", str(data_dir),
                                    "--quiet", "--skip-bad", "--workers", "2"]) == 0
    skipped = (data_dir / "skipped.csv").read_text().splitlines()
    assert len(skipped) >= 1 + len(kinds), skipped
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["skipped"] == len(skipped) - 1
