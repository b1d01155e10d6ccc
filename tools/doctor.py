#!/usr/bin/env python3
"""Report what the toolkit runs on: Caffe (version, build id, CPU/GPU), BLAS, Python, libraries.

Exits 1 with a message naming each missing piece, so `make doctor` is the first thing to run
when something fails on a new machine. `--blas` prints only the OpenBLAS kernel check (the
verdict, the SGEMM rates, the environment every Caffe gets); `--refresh` decides the kernel
again instead of reading the cached verdict; `--no-rates` skips the SGEMM measurements.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from dri_hep2.engine import blas_report, blas_verdict, caffe_env
from dri_hep2 import cli


def _blas_of(library: Path) -> str:
    """The BLAS that libcaffe is linked against, as the dynamic loader resolves it."""
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    hits = [line.split("=>")[-1].split("(")[0].strip()
            for line in out.splitlines() if "blas" in line.lower()]
    return ", ".join(hits) or "none found"


def _cuda_rows(info: dict[str, str]) -> list[tuple[str, str]]:
    """What a CUDA build was made with (its BUILD_OK stamp) and the GPUs the driver shows."""
    rows = [("CUDA", f"{info.get('cuda', '?')} ({info.get('cuda_route', '?')} toolkit: "
                     f"{info.get('cuda_root', '?')})"),
            ("CUDA archs", info.get("cuda_arch", "?")),
            ("NCCL", "built in: caffe train -gpu 0,1 is available" if info.get("nccl") == "1"
             else "not built in (one GPU per run)")]
    try:
        gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
        rows.append(("GPUs", "; ".join(gpus.stdout.strip().splitlines()) or "none seen"))
        rows.append(("NVIDIA driver", driver.stdout.strip().splitlines()[0]
                     if driver.returncode == 0 and driver.stdout.strip() else "?"))
    except (OSError, subprocess.TimeoutExpired):
        rows.append(("GPUs", "none seen (no nvidia-smi): the CUDA build runs in CPU mode only"))
    return rows


def blas_rows(rates: bool = True) -> list[tuple[str, str]]:
    """The OpenBLAS kernel check of the toolkit's Caffe (dri_hep2.engine.blas_report)."""
    library = blas_verdict.caffe_openblas(caffe_env.caffe_home())
    rows = blas_report.report(library)
    if rates and library is not None:
        rows.append(blas_report.rate_row(library, caffe_env.caffe_binary()))
    return rows


def collect(rates: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    rows: list[tuple[str, str]] = [("Python", sys.version.split()[0] + f" ({sys.executable})")]
    problems: list[str] = []

    for module, attr in (("numpy", "__version__"), ("google.protobuf", "__version__"),
                         ("lmdb", "__version__"), ("cv2", "__version__"),
                         ("matplotlib", "__version__"), ("skimage", "__version__")):
        try:
            mod = __import__(module, fromlist=["_"])
            rows.append((module, getattr(mod, attr)))
        except ImportError as exc:
            problems.append(f"Python package {module} missing ({exc}): run 'make setup'")

    try:
        info = caffe_env.build_info()
        rows.append(("Caffe source", f"Debian caffe {info['version']}"))
        rows.append(("Caffe build", f"{info['build_id']} ({info['built']})"))
        rows.append(("Caffe mode", info["mode"]))
        if info["mode"].startswith("GPU"):
            rows += _cuda_rows(info)
        rows.append(("caffe binary", f"{caffe_env.caffe_binary()} ({caffe_env.caffe_version()})"))
        caffe = caffe_env.pycaffe()
        rows.append(("pycaffe", str(Path(caffe.__file__).parent)))
        lib = next(caffe_env.caffe_home().glob("lib/libcaffe.so*"), None)
        rows.append(("BLAS", _blas_of(lib) if lib else "libcaffe.so not found"))
        rows += blas_rows(rates)
    except (caffe_env.CaffeNotFound, subprocess.CalledProcessError) as exc:
        problems.append(str(exc))
    return rows, problems


def print_blas(rates: bool) -> None:
    """`--blas`: the kernel check alone, and the OpenBLAS variables every Caffe gets."""
    for name, value in blas_rows(rates):
        print(f"{name:<20} {value}")
    print("environment for Caffe:",
          blas_verdict.blas_env(caffe_env.caffe_home()) or "{} (OpenBLAS's own choice)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blas", action="store_true",
                    help="only Caffe's OpenBLAS kernel check: the verdict and the SGEMM rates")
    ap.add_argument("--refresh", action="store_true",
                    help="decide the OpenBLAS kernel again, ignoring the cached verdict")
    ap.add_argument("--no-rates", action="store_true", help="skip the SGEMM rate measurements")
    args = ap.parse_args(argv)
    if args.refresh:
        # Before anything sets the environment of a Caffe from the old verdict.
        library = blas_verdict.caffe_openblas(caffe_env.caffe_home())
        if library is not None:
            blas_verdict.cached_verdict(library, refresh=True)
    if args.blas:
        print_blas(rates=not args.no_rates)
        return 0
    rows, problems = collect(rates=not args.no_rates)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for problem in problems:
        print(f"MISSING: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    cli.entry(main)
