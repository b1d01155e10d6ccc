"""The kit `tools/gpu_check.sh` runs on a GPU machine, made here on the CPU with pycaffe.

The GPU machine has Python 3.12 with numpy but neither `lmdb` nor a pycaffe that imports (ours
is built for Debian's Python 3.11), so everything that needs them is made beforehand:

  data.tar.xz   a small synthetic I3A replica built as `make data` builds it (rotations every
                90 degrees, Golgi every 30: ledger B10): lmdb/{train,val,test} and the mean;
                the test LMDB cut to whole batches of TEST_BATCH
  nets/         for each variant: <v>_time.prototxt (training net with Input layers, batch 24,
                for `caffe time`), <v>_train_val.prototxt and <v>_solver_{gpu,cpu}.prototxt
                (the short schedule stretched to the kit's iterations); dri_test.prototxt
                (TEST net on lmdb/test with the fused top-1 as an ArgMax output, for
                `caffe test`); sgemm_{gpu,cpu}.prototxt (one large InnerProduct)
  kit.json      FLOPs per training image of each variant (net.describe / net.bench), test
                labels in LMDB order, the counts, the schedule, the bundle's file name
  <bundle>      a copy of the Caffe bundle (`make bundle`) the check runs with

Written into a temporary folder and renamed into place at the end, so a half-made kit is never
taken for a finished one.
"""
from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from .. import atomic, ledger, paper, schedules
from ..data import build as data_build
from ..data import lmdb_io, synthetic
from ..data.folder import DataFolder
from ..data.split import SPLITS
from ..errors import UserError
from ..net import bench, build, describe, proto, solver

TEST_BATCH = 24
SGEMM = {"gpu": 8192, "cpu": 2048}
DATA = "data"          # the kit's data folder, relative to where gpu_check.sh runs Caffe
STEPS = (90, 30)       # rotation steps of the kit's training set: other classes, Golgi (B10)


def make_data(work: Path, scale: float, seed: int) -> DataFolder:
    """Synthetic replica -> the toolkit's own data build, with the kit's rotation steps."""
    replica = synthetic.make_replica(work / "synthetic", scale=scale, seed=seed,
                                     montage=False, progress=False)
    steps = tuple(STEPS[1] if c == paper.GOLGI else STEPS[0] for c in range(paper.NUM_CLASSES))
    data_build.build_dataset(replica, work / DATA, seed=seed, steps=steps, progress=False)
    shutil.rmtree(replica)
    return DataFolder(work / DATA)


def cut_test_lmdb(data: DataFolder, batch: int) -> list[int]:
    """Rewrite lmdb/test with whole batches only (Caffe's Data layer wraps around, so a partial
    last batch would count its first images twice); return the labels in key order."""
    entries = list(lmdb_io.read_lmdb(data.lmdb("test")))
    keep = entries[: len(entries) // batch * batch]
    if not keep:
        raise UserError(f"test split has {len(entries)} cells, fewer than one batch of "
                        f"{batch}: raise the kit's scale")
    labels = [lmdb_io.decode_datum(value)[1] for _, value in keep]
    lmdb_io.write_lmdb(data.lmdb("test"), iter(keep), count=len(keep),
                       value_size=max(len(v) for _, v in keep))
    return labels


def test_net(variant: str):
    """train_val's TEST phase on lmdb/test, batch TEST_BATCH, plus the fused prediction
    (ArgMax of `prob`, the sum of the three softmaxes) as an output `caffe test` prints."""
    net = build.train_val(variant, data_dir=DATA, test_batch_size=TEST_BATCH)
    for layer in net.layer:
        if layer.type == "Data" and layer.include and layer.include[0].phase == proto.caffe.TEST:
            layer.data_param.source = str(DataFolder(DATA).lmdb("test"))
    argmax = net.layer.add()
    argmax.name, argmax.type = "fused/argmax", "ArgMax"
    argmax.bottom.append("prob")
    argmax.top.append("fused/argmax")
    argmax.include.add().phase = proto.caffe.TEST
    return net


def sgemm_net(size: int) -> str:
    """One size x size x size single-precision GEMM per forward: InnerProduct of a
    (size x size) input with size outputs, no bias. Its forward is caffe_gpu_gemm (cuBLAS
    SGEMM) or caffe_cpu_gemm (OpenBLAS), the calls Caffe's convolutions go through."""
    return (f'name: "sgemm_{size}"\n'
            f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: {size} '
            f'dim: {size} }} }} }}\n'
            f'layer {{ name: "y" type: "InnerProduct" bottom: "x" top: "y" inner_product_param '
            f'{{ num_output: {size} bias_term: false weight_filler {{ type: "gaussian" '
            f'std: 0.01 }} }} }}\n')


def solver_text(variant: str, max_iter: int, test_interval: int, val_size: int) -> str:
    """The short schedule (T1) stretched to max_iter: the same base_lr, gamma and momentum,
    its stepsize scaled in proportion, one validation pass every test_interval, a snapshot
    half-way and one at the end (so a run stopped by gpu_check.sh's budget still leaves
    weights for the CPU/GPU comparison)."""
    short = schedules.get("short")
    sp = solver.solver(variant, "short", net_path=f"{variant}_train_val.prototxt",
                       snapshot_prefix=f"snapshots/{variant}", val_size=val_size)
    sp.max_iter = max_iter
    sp.stepsize = max(1, round(short.stepsize * max_iter / short.max_iter))
    sp.test_interval = test_interval
    sp.display = max(1, min(100, test_interval))
    sp.snapshot = max(1, max_iter // 2)
    sp.solver_mode = sp.CPU            # `caffe train -gpu 0` alone picks the device (train.py)
    sp.test_initialization = False     # T4
    return proto.to_text(sp)


def flops(variant: str) -> dict:
    d = describe.describe(net_param=build.deploy(variant))
    return {"train_flops_per_image": bench.train_flops_per_image(d),
            "forward_flops_per_image": d.flops, "params": d.params}


def prepare(out: Path, bundle: Path, scale: float = 0.05, seed: int = ledger.RANDOM_SEED,
            iterations: dict[str, tuple[int, int]] | None = None) -> tuple[Path, dict]:
    """Write the kit to `out` (replaced whole); `iterations`: mode -> (max_iter,
    test_interval) of the training it runs. Returns the kit folder and kit.json's content."""
    if not bundle.is_file():
        raise UserError(f"no bundle at {bundle}: run 'make bundle' (CUDA=1 CUDA_ARCH=90 for the "
                        "GPU machine)")
    iterations = iterations or {"gpu": (2000, 500), "cpu": (8, 4)}
    with atomic.staged_path(out.resolve(), is_dir=True) as work:
        data = make_data(work, scale, seed)
        labels = cut_test_lmdb(data, TEST_BATCH)
        counts = {split: lmdb_io.lmdb_entries(data.lmdb(split)) for split in SPLITS}
        # Only the LMDBs and the mean travel: the rest of the data folder is for people.
        with tarfile.open(work / "data.tar.xz", "w:xz", preset=6) as tar:
            tar.add(data.lmdb_dir, arcname=f"{DATA}/{DataFolder.lmdb_dir}")
        shutil.rmtree(data.path)
        nets = work / "nets"
        nets.mkdir()
        kit_flops = {}
        for variant in paper.VARIANTS:
            (nets / f"{variant}_time.prototxt").write_text(
                proto.to_text(build.benchmark(variant, paper.BATCH_SIZE)))
            (nets / f"{variant}_train_val.prototxt").write_text(proto.to_text(build.train_val(
                variant, data_dir=DATA,
                bn_moving_average=schedules.get("short").bn_moving_average)))
            for mode, (iters, interval) in iterations.items():
                (nets / f"{variant}_solver_{mode}.prototxt").write_text(
                    solver_text(variant, iters, interval, counts["val"]))
            kit_flops[variant] = flops(variant)
        (nets / "dri_test.prototxt").write_text(proto.to_text(test_net("dri")))
        for mode, size in SGEMM.items():
            (nets / f"sgemm_{mode}.prototxt").write_text(sgemm_net(size))
        shutil.copy2(bundle, work / bundle.name)
        kit = {
            "bundle": bundle.name,
            "batch_size": paper.BATCH_SIZE,
            "paper_max_iter": paper.MAX_ITER,
            "variants": list(paper.VARIANTS),
            "flops": kit_flops,
            "sgemm_size": SGEMM,
            "counts": counts,
            "test_batch": TEST_BATCH,
            "test_iterations": counts["test"] // TEST_BATCH,
            "test_labels": labels,
            "schedule": {**{mode: {"max_iter": i, "test_interval": t}
                            for mode, (i, t) in iterations.items()},
                         "base": "short (ASSUMPTIONS.md T1), stepsize scaled to max_iter"},
            "data": {"scale": scale, "seed": seed, "rotation_step": STEPS[0],
                     "golgi_rotation_step": STEPS[1]},
        }
        (work / "kit.json").write_text(json.dumps(kit, indent=1) + "\n")
    return out, kit
