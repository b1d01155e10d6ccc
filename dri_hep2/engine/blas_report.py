"""The BLAS rows `make doctor` prints (tools/doctor.py): the OpenBLAS Caffe loads, the kernel it
picks and the one chosen, the check, and SGEMM GFLOP/s of Caffe (own kernel / chosen) beside
numpy's (`rate_row`). Paths come in as arguments (tools/doctor.py asks caffe_env for them).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .blas_cpu import cpu_info
from .blas_rates import caffe_sgemm_gflops, numpy_sgemm_gflops
from .blas_verdict import cached_verdict


def report(library: Path | None) -> list[tuple[str, str]]:
    """(name, value) rows of the kernel check for the OpenBLAS `library` that Caffe loads
    (None: it loads none). Decides the verdict here if it is not cached yet."""
    if library is None:
        return [("OpenBLAS", "libcaffe does not load libopenblas: no kernel check")]
    rows: list[tuple[str, str]] = []
    v = cached_verdict(library)
    model, _ = cpu_info()
    rows.append(("CPU", f"{model}; best OpenBLAS 0.3.21 kernel for its flags: "
                        f"{v.best_for_cpu or 'none (SSE only)'}"))
    rows.append(("OpenBLAS (Caffe's)", str(library)))
    rows.append(("OpenBLAS threads", threading(library)))
    rows.append(("OpenBLAS kernel", f"own choice {v.detected.core or '?'}; "
                                    f"chosen {v.chosen or 'its own'}"
                                    + (" (cached verdict)" if v.from_cache else "")))
    if os.environ.get("OPENBLAS_CORETYPE"):
        rows.append(("OpenBLAS override", f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} "
                                          "set by the user: kept"))
    checked = [p for p in [v.detected, *v.candidates] if p.error_ratio is not None]
    rows.append(("SGEMM check", "; ".join(
        f"{p.core}: error {p.error_ratio:.3f} of the float32 bound" for p in checked)
        + f" -- {v.reason}"))
    return rows


def rate_row(library: Path, caffe_bin: Path) -> tuple[str, str]:
    """SGEMM GFLOP/s through the `caffe` binary under OpenBLAS's own kernel and, if the
    verdict for `library` chose another, under that one; numpy's beside them."""
    v = cached_verdict(library)
    own = caffe_sgemm_gflops(caffe_bin, {})
    line = f"own kernel {own:.0f}"
    if v.chosen:
        line += f", {v.chosen} {caffe_sgemm_gflops(caffe_bin, v.env()):.0f}"
    return ("SGEMM GFLOP/s", f"Caffe ({line}); numpy {numpy_sgemm_gflops():.0f} "
                             f"(2048^3, {os.cpu_count()} CPUs)")


# openblas_get_parallel(): how the library was built to run its GEMMs in parallel.
_PARALLEL = {0: "sequential (one thread)",
             1: "pthreads: a pool of its own beside Caffe's OpenMP team (CAFFE_BLAS=pthread)",
             2: "OpenMP: the libgomp team that Caffe's loops use, one pool (CAFFE_BLAS=openmp)"}


def threading(library: Path) -> str:
    """Which of Debian's OpenBLAS builds `library` is (tools/build_caffe.sh, CAFFE_BLAS), as
    the library itself says; asked in a subprocess so that this process loads no second BLAS."""
    code = "import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).openblas_get_parallel())"
    out = subprocess.run([sys.executable, "-c", code, str(library)], capture_output=True,
                         text=True, timeout=60)
    try:
        return _PARALLEL[int(out.stdout.strip())]
    except (ValueError, KeyError):
        return f"unknown (openblas_get_parallel: {(out.stdout + out.stderr).strip()[-200:]})"
