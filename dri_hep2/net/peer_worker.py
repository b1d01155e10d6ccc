"""One side of `make bench-peer` in a process of its own (issue 20).

Caffe (libgomp, OpenBLAS) and PyTorch (its own libgomp, MKL, oneDNN) each keep a team of
threads per core; in one process the two teams would compete for the cores and one
framework's figure would depend on the other having run. So net.peer_bench starts a fresh
interpreter per run, each loading one framework (`python -m dri_hep2.net.peer_worker MODE DIR`):

  prepare  (pycaffe) the variant's TRAIN net with Input layers (build.benchmark), the paper's
           SGD solver without tests or snapshots, Caffe's initial weights (its fillers, the
           solver's seed) and a seeded batch, into DIR
  caffe    pycaffe's SGDSolver on DIR's files: solver.step(1) per iteration, the batch sitting
           in the Input blobs (Input layers leave them as they are)
  torch    net.torch_peer.TorchNet of DIR's net, read with Caffe's caffe_pb2 module alone (no
           pycaffe, so no Caffe OpenMP or BLAS in this process), Caffe's initial weights,
           torch.optim.SGD at the solver's rates: zero_grad, forward, loss, backward, step

Each prints one JSON line on stdout: the iterations' milliseconds, the first iteration's loss
(the same weights and batch on both sides; only the dropout masks differ), what ran.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from ..engine import blas_verdict, caffe_env

FILES = dict(net="net.prototxt", solver="solver.prototxt", caffemodel="init.caffemodel",
             weights="init.npz", batch="batch.npz", info="prepare.json")


def _blas_of(library: Path | None) -> str:
    """The BLAS libraries libcaffe loads, as the dynamic loader resolves them."""
    if library is None:
        return "?"
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    found = re.findall(r"(lib\S*(?:blas|mkl)\S*)\s*=>\s*(\S+)", out)
    return ", ".join(f"{name} ({os.path.realpath(path)})" for name, path in found) or "none"


def prepare(out: Path, variant: str, batch: int, seed: int) -> dict:
    from .. import ledger, paper
    from . import build, proto, solver as solvers

    caffe = caffe_env.use_device()
    net_param = build.benchmark(variant, batch)
    (out / FILES["net"]).write_text(proto.to_text(net_param))
    sp = solvers.solver(variant, "paper", str(out / FILES["net"]), str(out / "snapshot"),
                        val_size=1, random_seed=seed)
    # Nothing but the update: no test nets (Step would test at iteration 0), no snapshots.
    del sp.test_iter[:]
    sp.test_interval, sp.snapshot, sp.display, sp.snapshot_after_train = 0, 0, 0, False
    (out / FILES["solver"]).write_text(proto.to_text(sp))
    net = caffe.SGDSolver(str(out / FILES["solver"])).net
    net.save(str(out / FILES["caffemodel"]))
    np.savez(out / FILES["weights"], **{f"{name}#{i}": b.data for name, blobs in net.params.items()
                                        for i, b in enumerate(blobs)})
    rng = np.random.default_rng(seed)
    shape = (batch, ledger.INPUT_CHANNELS, paper.INPUT_SIZE, paper.INPUT_SIZE)
    # About the spread of a mean-subtracted cell image at scale 1/128 (ledger N9).
    np.savez(out / FILES["batch"], data=(rng.standard_normal(shape) * 0.3).astype(np.float32),
             label=rng.integers(0, paper.NUM_CLASSES, batch).astype(np.float32))
    info = caffe_env.build_info()
    library = blas_verdict.caffe_library(caffe_env.caffe_home())
    learned = sum(b.data.size for name, blobs in net.params.items()
                  for b in blobs if net.layer_dict[name].type != "BatchNorm")
    found = dict(variant=variant, batch=batch, seed=seed, learned_params=learned,
                 caffe=f"BVLC Caffe {info.get('version', '?')}",
                 caffe_build=", ".join(filter(None, (
                    "stock" if info.get("stock") == "1" else "patched", info.get("blas"),
                    f"build {info.get('build_id', '?')}"))),
                 blas=_blas_of(library), base_lr=sp.base_lr, momentum=sp.momentum,
                 weight_decay=sp.weight_decay, lr_policy=sp.lr_policy)
    (out / FILES["info"]).write_text(json.dumps(found, indent=1))
    return found


def _caffe_threads() -> str:
    """Patch 10's OpenMP team and OpenBLAS's threads, asked of the loaded libraries."""
    home = caffe_env.caffe_home()
    parts = []
    library = blas_verdict.caffe_library(home)
    omp = getattr(ctypes.CDLL(str(library)), "caffe_dri_openmp_threads", None) if library else None
    parts.append(f"OpenMP {omp()}" if omp else "no OpenMP loops (stock)")
    openblas = blas_verdict.caffe_openblas(home)
    if openblas:
        parts.append(f"OpenBLAS {ctypes.CDLL(str(openblas)).openblas_get_num_threads()}")
    return ", ".join(parts)


def _timed(step, iterations: int) -> tuple[list[float], float]:
    """ms of each call of step(), and what the first call returned (its loss)."""
    times, first = [], None
    for _ in range(iterations):
        start = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - start) * 1000)
        first = loss() if first is None else first
    return times, first


def run_caffe(work: Path, iterations: int) -> dict:
    caffe = caffe_env.use_device()
    solver = caffe.SGDSolver(str(work / FILES["solver"]))
    net = solver.net
    net.copy_from(str(work / FILES["caffemodel"]))
    batch = np.load(work / FILES["batch"])
    net.blobs["data"].data[...] = batch["data"]
    net.blobs["label"].data[...] = batch["label"]
    weights = {name: w for name, w in net.blob_loss_weights.items() if w}

    def step():
        solver.step(1)
        return lambda: float(sum(w * net.blobs[name].data for name, w in weights.items()))

    times, loss = _timed(step, iterations)
    return dict(times_ms=times, first_loss=loss, threads=_caffe_threads(),
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))


def caffe_pb2_alone():
    """Caffe's caffe_pb2 (protobuf only) loaded by path, so that `import caffe` (which loads
    _caffe and with it Caffe's OpenMP and BLAS) never runs in a PyTorch process."""
    home = caffe_env.caffe_home()
    found = sorted(home.glob("lib/python*/*-packages/caffe/proto/caffe_pb2.py")) \
        + sorted(home.glob("python/caffe/proto/caffe_pb2.py"))
    if not found:
        raise caffe_env.CaffeNotFound(f"no caffe/proto/caffe_pb2.py under {home}: run 'make setup'")
    spec = importlib.util.spec_from_file_location("dri_peer_caffe_pb2", found[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_torch(work: Path, iterations: int, threads: int, seed: int) -> dict:
    import torch
    from google.protobuf import text_format

    from .torch_peer import TorchNet

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    pb2 = caffe_pb2_alone()
    net_param = text_format.Parse((work / FILES["net"]).read_text(), pb2.NetParameter())
    sp = text_format.Parse((work / FILES["solver"]).read_text(), pb2.SolverParameter())
    model = TorchNet(net_param, "TRAIN")
    params: dict[str, list] = {}
    with np.load(work / FILES["weights"]) as arrays:
        for key in sorted(arrays.files, key=lambda k: (k.rpartition("#")[0],
                                                       int(k.rpartition("#")[2]))):
            params.setdefault(key.rpartition("#")[0], []).append(arrays[key])
    model.load_caffe(params)
    optimizer = model.sgd(sp.base_lr, sp.momentum, sp.weight_decay)
    batch = np.load(work / FILES["batch"])
    inputs = {"data": torch.from_numpy(batch["data"]), "label": torch.from_numpy(batch["label"])}

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model.total_loss(model(inputs))
        loss.backward()
        optimizer.step()
        return lambda: float(loss.detach())

    times, loss = _timed(step, iterations)
    return dict(times_ms=times, first_loss=loss, threads=str(torch.get_num_threads()),
                version=torch.__version__, learned_params=model.learned_count(),
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                backends=f"MKL {'on' if torch.backends.mkl.is_available() else 'off'}, "
                         f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("prepare", "caffe", "torch"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--variant", default="dri")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1701)
    parser.add_argument("--iterations", type=int, default=1, help="warm-up ones included")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    if args.mode == "prepare":
        result = prepare(args.dir, args.variant, args.batch, args.seed)
    elif args.mode == "caffe":
        result = run_caffe(args.dir, args.iterations)
    else:
        result = run_torch(args.dir, args.iterations, args.threads, args.seed)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
