"""The cross-validation protocols (issue 11, item 3; ledger C6-C8): folds partition the cells,
k-fold is stratified and seeded, no specimen sits in two parts under loso and specimen, each
fold's validation part comes from its training part, and only the training part is rotated."""
from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from dri_hep2 import cli, ledger
from dri_hep2.experiment import experiments
from dri_hep2.data import augment, build, i3a, lmdb_io, replicas, split, synthetic
from dri_hep2.data.folder import DataFolder
from dri_hep2.data.records import CellRecord, ReaderOptions
from dri_hep2.errors import UserError

TOOL = Path(__file__).resolve().parent.parent / "tools" / "make_data.py"
_spec = importlib.util.spec_from_file_location("make_data", TOOL)
make_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_data)


def records(per_class=(40, 33, 25, 9), specimens_per_class=5):
    """Cell records without images (the protocols never look at pixels): classes of the given
    sizes, each class's cells dealt in turn to its own specimens."""
    out, cell = [], 1
    for label, n in enumerate(per_class):
        for k in range(n):
            spec = f"s{label}-{k % specimens_per_class}"
            out.append(CellRecord(f"{cell:05d}", label, Path("x.png"), specimen=spec))
            cell += 1
    return out


def _parts(splits):
    return [{r.id for r in splits[s]} for s in split.SPLITS]


def _specimens(splits):
    return [{r.specimen for r in splits[s]} for s in split.SPLITS]


def test_kfold_partitions_stratified_and_seeded():
    recs = records()
    folds = split.fold_assignment(recs, "kfold", 3)
    assert set(folds) == {r.id for r in recs} and set(folds.values()) == {0, 1, 2}
    sizes = Counter(folds.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    for label in range(4):
        per_fold = Counter(folds[r.id] for r in recs if r.label == label)
        assert max(per_fold.values()) - min(per_fold.values()) <= 1, (label, per_fold)
    assert split.fold_assignment(recs, "kfold", 3) == folds
    assert split.fold_assignment(recs, "kfold", 3, seed=7) != folds
    assert split.fold_count(recs, "kfold") == ledger.CV_FOLDS


@pytest.mark.parametrize("protocol,k", [("kfold", 3), ("kfold", 5), ("loso", None), ("loso", 4)])
def test_every_fold_is_train_val_test_of_all_cells_and_the_tests_partition(protocol, k):
    recs = records()
    count = split.fold_count(recs, protocol, k)
    tested: list[str] = []
    for fold in range(1, count + 1):
        parts = _parts(split.split_records(recs, protocol=protocol, folds=k, fold=fold))
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert set.union(*parts) == {r.id for r in recs}
        tested += parts[2]
    assert sorted(tested) == sorted(r.id for r in recs)      # each cell tested exactly once


def test_kfold_validation_is_a_fifth_of_each_class_of_the_training_part():
    recs = records()
    splits = split.split_records(recs, protocol="kfold", folds=3, fold=2)
    for label in range(4):
        rest = [r for r in recs if r.label == label and r not in splits["test"]]
        val = [r for r in splits["val"] if r.label == label]
        assert len(val) == round(0.2 * len(rest))


def test_loso_leaves_one_specimen_out_and_no_specimen_is_in_two_parts():
    recs = records(specimens_per_class=3)               # 12 specimens: one fold each
    assert split.fold_count(recs, "loso") == 12 == ledger.LOSO_MAX_FOLDS
    for fold in range(1, 13):
        splits = split.split_records(recs, protocol="loso", fold=fold)
        specs = _specimens(splits)
        assert len(specs[2]) == 1
        assert not (specs[0] & specs[1] or specs[0] & specs[2] or specs[1] & specs[2])
        assert specs[1], "every fold validates on some specimens"


def test_loso_with_many_specimens_groups_them_and_keeps_them_whole():
    recs = records(specimens_per_class=5)               # 20 specimens > LOSO_MAX_FOLDS
    assert split.fold_count(recs, "loso") == ledger.CV_FOLDS
    folds = split.fold_assignment(recs, "loso")
    by_specimen: dict[str, set[int]] = {}
    for r in recs:
        by_specimen.setdefault(r.specimen, set()).add(folds[r.id])
    assert all(len(f) == 1 for f in by_specimen.values())
    # Five specimens per class over five folds: one of each class in every fold.
    for label in range(4):
        assert Counter(next(iter(f)) for s, f in by_specimen.items()
                       if s.startswith(f"s{label}-")) == Counter(range(5))
    for fold in range(1, 6):
        specs = _specimens(split.split_records(recs, protocol="loso", fold=fold))
        assert not (specs[0] & specs[1] or specs[0] & specs[2] or specs[1] & specs[2])


def test_specimen_protocol_keeps_specimens_whole():
    specs = _specimens(split.split_records(records(specimens_per_class=5), protocol="specimen"))
    assert not (specs[0] & specs[1] or specs[0] & specs[2] or specs[1] & specs[2])


def test_protocols_say_what_they_need():
    recs = records()
    no_specimen = [CellRecord(r.id, r.label, r.image) for r in recs]
    with pytest.raises(UserError, match="--protocol loso needs a specimen ID for every cell"):
        split.fold_count(no_specimen, "loso")
    with pytest.raises(UserError, match="two or more folds"):
        split.fold_count(recs, "kfold", 1)
    with pytest.raises(UserError, match="fold 4 does not exist: kfold makes folds 1-3"):
        split.split_records(recs, protocol="kfold", folds=3, fold=4)
    with pytest.raises(UserError, match="unknown split protocol 'bootstrap'"):
        split.split_records(recs, protocol="bootstrap")


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    """I3A's replica at 1 % (136 cells, 48 specimens)."""
    return synthetic.make_replica(tmp_path_factory.mktemp("cv") / "i3a", scale=0.01,
                                  progress=False, montage=False)


@pytest.mark.parametrize("protocol,k,fold", [("kfold", 3, 2), ("loso", None, 5)])
def test_a_folds_data_folder_rotates_its_training_part_only(replica, tmp_path, protocol, k,
                                                            fold, capsys):
    data_dir = tmp_path / "data"
    argv = ["--i3a", str(replica), "--data-dir", str(data_dir), "--quiet", "--workers", "2",
            "--protocol", protocol, "--fold", str(fold)] + (["--folds", str(k)] if k else [])
    assert cli.run(make_data.main, argv) == 0
    out = capsys.readouterr().out
    m = json.loads((data_dir / "manifest.json").read_text())
    count = k or ledger.CV_FOLDS
    assert (m["parameters"]["folds"], m["parameters"]["fold"]) == (count, fold)
    assert f"{protocol}: fold {fold} of {count} is the test part" in out
    steps = m["parameters"]["rotation_steps_deg"]
    train, val, test = (m["splits"][s] for s in split.SPLITS)
    assert train["per_class"] == [n * len(augment.rotation_angles(c, steps))
                                  for c, n in enumerate(train["cells_per_class"])]
    assert (val["total"], test["total"]) == (val["cells"], test["cells"])
    for name in split.SPLITS:
        assert lmdb_io.lmdb_entries(data_dir / "lmdb" / name) == m["splits"][name]["total"]
    # The split CSVs are the fold: its test part is fold `fold` of the assignment.
    recs = i3a.read_i3a(replica).records
    assigned = split.fold_assignment(recs, protocol, k)
    tested = {r["id"] for r in DataFolder(data_dir).read_split("test")}
    assert tested == {cid for cid, f in assigned.items() if f == fold - 1}


def test_a_split_with_an_empty_part_is_refused(tmp_path, capsys):
    """One cell per class: the 64/16/20 split leaves validation and test empty, which Caffe's
    solver cannot validate on; refused before anything is written."""
    tiny = synthetic.make_replica(tmp_path / "i3a", scale=0.0001, progress=False,
                                  montage=False)
    rc = cli.run(make_data.main, ["--i3a", str(tiny), "--data-dir", str(tmp_path / "d"),
                                  "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "the val part of" in err and "would be empty" in err
    assert not (tmp_path / "d").exists()
    rc = cli.run(make_data.main, ["--i3a", str(tiny), "--data-dir", str(tmp_path / "d"),
                                  "--quiet", "--protocol", "kfold", "--folds", "7"])
    assert rc == 2 and "K=7 folds but only 6 cells" in capsys.readouterr().err


def test_a_split_seed_series_rebuilds_a_fold_of_another_layout_with_its_settings(tmp_path):
    """`make seeds VARY_SPLIT=1` rebuilds a data folder with another seed from what its manifest
    records: the layout, the reader's knobs, the protocol and the fold stay."""
    source = replicas.make_task2(tmp_path / "t2", specimens_per_class=2, images_per_specimen=1,
                                 grid=(2, 2))
    data = tmp_path / "data"
    build.build_dataset(source, data, protocol="loso", folds=3, fold=2, progress=False,
                        workers=2, announce=None, reader=ReaderOptions(cell_padding=2))
    again = experiments.split_data(data, 99)
    old, new = (json.loads((d / "manifest.json").read_text())["parameters"]
                for d in (data, again))
    assert new["seed"] == 99 and old["seed"] == ledger.RANDOM_SEED
    assert {k: v for k, v in new.items() if k != "seed"} == \
        {k: v for k, v in old.items() if k != "seed"}
    assert new["reader"]["cell_padding"] == 2 and (new["folds"], new["fold"]) == (3, 2)
