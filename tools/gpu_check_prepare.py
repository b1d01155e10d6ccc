#!/usr/bin/env python3
"""Prepare the kit that tools/gpu_check.sh runs on a GPU machine, here on the CPU with pycaffe.

The GPU machine has Python 3.12 with numpy but neither `lmdb` nor a pycaffe that imports (ours
is built for Debian's Python 3.11), so everything that needs them is made here:

  data.tar.xz   a small synthetic I3A replica as the toolkit builds it (make_synthetic +
                make_data, rotations every 90 degrees, Golgi every 30): lmdb/{train,val,test}
                and lmdb/mean.binaryproto; the test LMDB cut to whole batches of TEST_BATCH
  nets/         for each variant: <v>_time.prototxt (training net with Input layers, batch 24,
                for `caffe time`), <v>_train_val.prototxt and <v>_solver_{gpu,cpu}.prototxt
                (the short schedule stretched to --gpu-iters, or --cpu-iters); dri_test.prototxt
                (TEST net on lmdb/test with the fused top-1 as an ArgMax output, for
                `caffe test`); sgemm_{gpu,cpu}.prototxt (one large InnerProduct)
  kit.json      FLOPs per training image of each variant (dri_hep2.net.describe / bench), test
                labels in LMDB order, the counts, the schedule, the bundle's file name
  <bundle>      a copy of the Caffe bundle (make bundle) the check runs with

Written into a temporary folder and renamed to --out at the end, so a half-made kit is never
taken for a finished one. `make gpu-check-kit` runs it.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from dri_hep2 import paper
from dri_hep2.data import lmdb_io
from dri_hep2.net import bench, build, describe, solver

REPO = Path(__file__).resolve().parent.parent
TEST_BATCH = 24
SGEMM = {"gpu": 8192, "cpu": 2048}
DATA = "data"          # the kit's data folder, relative to where gpu_check.sh runs Caffe


def make_data(work: Path, scale: float, seed: int) -> Path:
    """Synthetic replica -> LMDBs, through the toolkit's own two tools."""
    synth, data = work / "synthetic", work / DATA
    py = sys.executable
    for cmd in ([py, str(REPO / "tools/make_synthetic.py"), "--out", str(synth),
                 "--scale", str(scale), "--seed", str(seed), "--quiet"],
                [py, str(REPO / "tools/make_data.py"), "--i3a", str(synth),
                 "--data-dir", str(data), "--seed", str(seed), "--step", "90",
                 "--golgi-step", "30", "--quiet"]):
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[1:3])} failed (exit {run.returncode}):\n"
                             f"{run.stdout[-2000:]}{run.stderr[-3000:]}")
    shutil.rmtree(synth)
    return data


def cut_test_lmdb(lmdb_dir: Path, batch: int) -> list[int]:
    """Rewrite lmdb/test with whole batches only (Caffe's Data layer wraps around, so a partial
    last batch would count its first images twice); return the labels in key order."""
    entries = list(lmdb_io.read_lmdb(lmdb_dir / "test"))
    keep = entries[: len(entries) // batch * batch]
    if not keep:
        raise SystemExit(f"test split has {len(entries)} cells, fewer than one batch of {batch}: "
                         "raise --scale")
    labels = [lmdb_io.decode_datum(value)[1] for _, value in keep]
    shutil.rmtree(lmdb_dir / "test")
    lmdb_io.write_lmdb(lmdb_dir / "test", iter(keep), count=len(keep),
                       value_size=max(len(v) for _, v in keep))
    return labels


def lmdb_count(path: Path) -> int:
    return sum(1 for _ in lmdb_io.read_lmdb(path))


def test_net(variant: str):
    """train_val's TEST phase on lmdb/test, batch TEST_BATCH, plus the fused prediction
    (ArgMax of `prob`, the sum of the three softmaxes) as an output `caffe test` prints."""
    net = build.train_val(variant, data_dir=DATA, test_batch_size=TEST_BATCH)
    for layer in net.layer:
        if layer.type == "Data" and layer.include and layer.include[0].phase == 1:  # TEST
            layer.data_param.source = f"{DATA}/lmdb/test"
    argmax = net.layer.add()
    argmax.name, argmax.type = "fused/argmax", "ArgMax"
    argmax.bottom.append("prob")
    argmax.top.append("fused/argmax")
    argmax.include.add().phase = 1
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
    sp = solver.solver(variant, "short", net_path=f"{variant}_train_val.prototxt",
                       snapshot_prefix=f"snapshots/{variant}", val_size=val_size)
    sp.max_iter = max_iter
    sp.stepsize = max(1, round(paper.SHORT_STEPSIZE * max_iter / paper.SHORT_MAX_ITER))
    sp.test_interval = test_interval
    sp.display = max(1, min(100, test_interval))
    sp.snapshot = max(1, max_iter // 2)
    sp.solver_mode = sp.CPU            # `caffe train -gpu 0` alone picks the device (train.py)
    sp.test_initialization = False     # T4
    return build.to_text(sp)


def flops(variant: str) -> dict:
    d = describe.describe(net_param=build.deploy(variant))
    return {"train_flops_per_image": bench.train_flops_per_image(d),
            "forward_flops_per_image": d.flops, "params": d.params}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--out", type=Path, required=True, help="kit folder to write (replaced)")
    ap.add_argument("--bundle", type=Path, required=True,
                    help="Caffe bundle (dist/caffe-<id>.tar.xz, from `make bundle`) to copy in")
    ap.add_argument("--scale", type=float, default=0.05,
                    help="size of the synthetic replica, a fraction of I3A (default 0.05: "
                         "680 cells, about 1,800 training images)")
    ap.add_argument("--seed", type=int, default=paper.RANDOM_SEED)
    ap.add_argument("--gpu-iters", type=int, default=2000, help="GPU training iterations")
    ap.add_argument("--gpu-test-interval", type=int, default=500)
    ap.add_argument("--cpu-iters", type=int, default=8, help="CPU-mode training iterations")
    ap.add_argument("--cpu-test-interval", type=int, default=4)
    args = ap.parse_args(argv)
    if not args.bundle.is_file():
        raise SystemExit(f"no bundle at {args.bundle}: run 'make bundle' (CUDA=1 CUDA_ARCH=90 "
                         "for the GPU machine)")

    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp.", dir=out.parent))
    try:
        data = make_data(work, args.scale, args.seed)
        labels = cut_test_lmdb(data / "lmdb", TEST_BATCH)
        counts = {split: lmdb_count(data / "lmdb" / split) for split in ("train", "val", "test")}
        # Only the LMDBs and the mean travel: the rest of make_data's output is for people.
        with tarfile.open(work / "data.tar.xz", "w:xz", preset=6) as tar:
            tar.add(data / "lmdb", arcname=f"{DATA}/lmdb")
        shutil.rmtree(data)

        nets = work / "nets"
        nets.mkdir()
        kit_flops = {}
        for variant in build.VARIANTS:
            (nets / f"{variant}_time.prototxt").write_text(
                build.to_text(build.benchmark(variant, paper.BATCH_SIZE)))
            (nets / f"{variant}_train_val.prototxt").write_text(build.to_text(build.train_val(
                variant, data_dir=DATA, bn_moving_average=paper.SHORT_BN_MOVING_AVERAGE)))
            for mode, iters, interval in (("gpu", args.gpu_iters, args.gpu_test_interval),
                                          ("cpu", args.cpu_iters, args.cpu_test_interval)):
                (nets / f"{variant}_solver_{mode}.prototxt").write_text(
                    solver_text(variant, iters, interval, counts["val"]))
            kit_flops[variant] = flops(variant)
        (nets / "dri_test.prototxt").write_text(build.to_text(test_net("dri")))
        for mode, size in SGEMM.items():
            (nets / f"sgemm_{mode}.prototxt").write_text(sgemm_net(size))

        shutil.copy2(args.bundle, work / args.bundle.name)
        kit = {
            "bundle": args.bundle.name,
            "batch_size": paper.BATCH_SIZE,
            "variants": list(build.VARIANTS),
            "flops": kit_flops,
            "sgemm_size": SGEMM,
            "counts": counts,
            "test_batch": TEST_BATCH,
            "test_iterations": counts["test"] // TEST_BATCH,
            "test_labels": labels,
            "schedule": {"gpu": {"max_iter": args.gpu_iters, "test_interval": args.gpu_test_interval},
                         "cpu": {"max_iter": args.cpu_iters, "test_interval": args.cpu_test_interval},
                         "base": "short (ASSUMPTIONS.md T1), stepsize scaled to max_iter"},
            "data": {"scale": args.scale, "seed": args.seed, "rotation_step": 90,
                     "golgi_rotation_step": 30},
        }
        (work / "kit.json").write_text(json.dumps(kit, indent=1) + "\n")
        work.chmod(0o755)      # mkdtemp makes it private; the kit is read by whoever runs it
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"gpu-check kit: {out} ({size / 2**20:.1f} MiB; train {counts['train']}, "
          f"val {counts['val']}, test {counts['test']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
