"""`make data` end to end on a small synthetic replica: Caffe's own Data layer reads the LMDBs,
the mean loads, key order is a seeded shuffle, reruns do nothing, interruptions leave nothing
half-written (issue 4, items 5-6; input size from section 2.1)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from dri_hep2 import ledger, paper
from dri_hep2.data import augment, build, i3a, lmdb_io, split, synthetic
from dri_hep2.data.folder import DataFolder


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Path:
    return synthetic.make_replica(tmp_path_factory.mktemp("syn") / "i3a", scale=0.01,
                                  progress=False, montage=False)


@pytest.fixture(scope="module")
def data_dir(replica, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "data"
    build.build_dataset(replica, out, progress=False, workers=2)
    return out


def _data_layer_net(caffe, tmp_path, source: Path, batch: int, mean: Path):
    proto = tmp_path / "read.prototxt"
    proto.write_text(f"""
layer {{ name: "data" type: "Data" top: "data" top: "label"
  include {{ phase: TEST }}
  transform_param {{ mean_file: "{mean}" }}
  data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }} }}
""")
    return caffe.Net(str(proto), caffe.TEST)


@pytest.mark.parametrize("name", split.SPLITS)
def test_caffe_data_layer_reads_each_lmdb_with_the_mean(caffe, data_dir, tmp_path, name):
    entries = list(lmdb_io.read_lmdb(data_dir / "lmdb" / name))
    mean_path = data_dir / "lmdb" / "mean.binaryproto"
    net = _data_layer_net(caffe, tmp_path, data_dir / "lmdb" / name, len(entries), mean_path)
    net.forward()
    size = paper.INPUT_SIZE
    assert net.blobs["data"].data.shape == (len(entries), ledger.INPUT_CHANNELS, size, size)
    pixels, labels = zip(*(lmdb_io.decode_datum(v) for _, v in entries))
    mean = lmdb_io.read_mean(mean_path)
    assert mean.shape == (1, size, size) and 0 < mean.mean() < 255
    # Caffe read our Datums in key order, minus our mean: the same numbers we wrote
    np.testing.assert_allclose(net.blobs["data"].data, np.stack(pixels) - mean, atol=1e-4)
    assert list(net.blobs["label"].data.astype(int)) == list(labels)
    assert set(labels) == set(range(paper.NUM_CLASSES))


def test_manifest_counts_and_splits(data_dir, replica):
    m = json.loads((data_dir / "manifest.json").read_text())
    counts = synthetic.class_counts(0.01)
    for c, n in enumerate(counts):
        cells = [m["splits"][s]["cells_per_class"][c] for s in split.SPLITS]
        assert tuple(cells) == split.split_counts(n)
    assert m["splits"]["train"]["per_class"] == [
        n * 360 // paper.rotation_step_deg(c)
        for c, n in enumerate(m["splits"]["train"]["cells_per_class"])]
    assert m["class_order"] == list(paper.CLASSES)
    assert m["parameters"]["seed"] == ledger.RANDOM_SEED and len(m["inputs"]["sha256"]) == 64
    rows = {s: DataFolder(data_dir).read_split(s) for s in split.SPLITS}
    ids = [{r["id"] for r in rows[s]} for s in split.SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # The split CSVs keep each cell's specimen (the replica has one per cell).
    specimens = {r.id: r.specimen for r in i3a.read_i3a(replica).records}
    assert all(r["specimen"] == specimens[r["id"]] for s in split.SPLITS for r in rows[s])


def test_key_order_is_a_seeded_shuffle(replica, data_dir, tmp_path):
    keys = [k for k, _ in lmdb_io.read_lmdb(data_dir / "lmdb" / "train")]
    labels = [lmdb_io.decode_datum(v)[1] for _, v in lmdb_io.read_lmdb(data_dir / "lmdb" / "train")]
    # shuffled: the classes are interleaved, not in blocks as the IDs are
    assert sum(a != b for a, b in zip(labels, labels[1:])) > len(labels) // 2
    again = tmp_path / "again"
    build.build_dataset(replica, again, progress=False)
    assert [k for k, _ in lmdb_io.read_lmdb(again / "lmdb" / "train")] == keys
    for s in split.SPLITS:
        assert (again / "splits" / f"{s}.csv").read_bytes() == \
            (data_dir / "splits" / f"{s}.csv").read_bytes()
    other = tmp_path / "other"
    build.build_dataset(replica, other, progress=False, seed=5)
    assert [k for k, _ in lmdb_io.read_lmdb(other / "lmdb" / "train")] != keys


def test_rerun_with_same_inputs_does_nothing_and_a_change_rebuilds(replica, tmp_path, capsys):
    out = tmp_path / "data"
    build.build_dataset(replica, out, progress=False)
    stamp = os.stat(out / "lmdb" / "train" / "data.mdb").st_mtime_ns
    build.build_dataset(replica, out, progress=False)
    assert "nothing to do" in capsys.readouterr().out
    assert os.stat(out / "lmdb" / "train" / "data.mdb").st_mtime_ns == stamp
    m = build.build_dataset(replica, out, progress=False, steps=(90,) * 6)
    assert m["splits"]["train"]["total"] == 4 * m["splits"]["train"]["cells"]


def test_interrupted_build_leaves_no_partial_lmdb(replica, tmp_path, monkeypatch):
    out = tmp_path / "data"
    real = lmdb_io.write_lmdb

    def interrupted(path, entries, **kw):
        def some():
            for k, item in enumerate(entries):
                if k == 100:
                    raise KeyboardInterrupt
                yield item
        return real(path, some(), **kw)
    monkeypatch.setattr(lmdb_io, "write_lmdb", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build.build_dataset(replica, out, progress=False)
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert leftovers == [], leftovers


@pytest.mark.parametrize("shape,label", [((76, 76), 0), ((76, 76), 5), ((3, 4, 5), 1),
                                         ((1, 200, 300), 127), ((2, 2), -1)])
def test_datum_encoding_is_protobufs_byte_for_byte(caffe, shape, label):
    img = np.random.default_rng(label + 7).integers(0, 256, shape, dtype=np.uint8)
    arr = img[None] if img.ndim == 2 else img
    expected = caffe.proto.caffe_pb2.Datum(
        channels=arr.shape[0], height=arr.shape[1], width=arr.shape[2], data=arr.tobytes(),
        label=label).SerializeToString()
    assert lmdb_io.encode_datum(img, label) == expected
    pixels, got_label = lmdb_io.decode_datum(expected)
    assert got_label == label and np.array_equal(pixels, arr)


@pytest.mark.parametrize("shape", [(1, 76, 76), (3, 2, 5)])
def test_mean_blob_is_protobufs_byte_for_byte(caffe, shape):
    mean = np.random.default_rng(1).random(shape) * 255
    blob = caffe.proto.caffe_pb2.BlobProto(num=1, channels=shape[0], height=shape[1],
                                           width=shape[2])
    blob.data.extend(mean.astype(np.float32).ravel().tolist())
    assert lmdb_io.mean_blob(mean) == blob.SerializeToString()


def test_lmdb_values_are_those_of_protobuf_datums_of_the_views(data_dir):
    """The build frames views itself and writes in key order: each value is still the Datum of
    its key's view (the cell's PNG, rotated and resized as cell_views does)."""
    rows = DataFolder(data_dir).read_split("val")
    classes = {name.lower(): c for c, name in enumerate(paper.CLASSES)}
    folder = Path(json.loads((data_dir / "manifest.json").read_text())["inputs"]["folder"])
    entries = dict(lmdb_io.read_lmdb(data_dir / "lmdb" / "val"))
    # The keys are the seeded shuffle of the split's cells (seed, split index 1), D11.
    ids = [row["id"] for row in rows]
    assert sorted(entries) == sorted(lmdb_io.shuffled_keys(ids, [ledger.RANDOM_SEED, 1]))
    by_id = {key.decode().split("_", 1)[1]: value for key, value in entries.items()}
    assert len(by_id) == len(rows)
    for cell_id, cls in ((row["id"], row["class"]) for row in rows):
        view = augment.cell_views(i3a.decode_png(folder / f"{cell_id}.png"))[0]
        assert by_id[cell_id] == lmdb_io.encode_datum(view, classes[cls.lower()])
