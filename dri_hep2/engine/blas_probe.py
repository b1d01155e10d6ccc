"""The SGEMM probe: is an OpenBLAS kernel the one in effect, correct, and how fast (issue 14).

`probe(library, coretype)` runs this file as a program in a fresh interpreter, with
OPENBLAS_CORETYPE set (or not) before the library loads, so a kernel that crashes (an
instruction the CPU lacks: SIGILL) dies there and not in the caller. The program
(`python dri_hep2/engine/blas_probe.py LIBRARY REPEATS`) loads LIBRARY with ctypes, calls its
cblas_sgemm directly, the routine Caffe's caffe_cpu_gemm calls, and prints one JSON line:
the kernel OpenBLAS runs (`openblas_get_corename`), the error ratio and the 2048^3 rate.

The error bound. For C = A B with K terms per element, any float32 summation order (FMA or
not) satisfies |C - AB| <= gamma_K |A| |B| element-wise, gamma_K = K u / (1 - K u), u = 2^-24
(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.13). We compute
AB and |A||B| in float64 (exact enough: their own error is ~2^-53 relative) and report
ratio = max_ij |C - AB|_ij / (gamma_K (|A||B|)_ij). A correct kernel has ratio <= 1 whatever
its blocking; in practice ~0.01-0.05, as rounding errors partly cancel. A kernel that
computes wrongly (or an instruction the CPU lacks: the probe dies) fails the check.

Imports nothing of the package (it runs by path, outside it), and numpy only in the program.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 120
# Shapes of Caffe's convolution GEMMs (odd sizes exercise every edge path of the kernel),
# both transposes the conv backward pass uses, and one large square multiply:
# (m, n, k, transpose A, transpose B).
SHAPES = ((64, 1444, 49, 0, 0), (96, 361, 1728, 0, 0), (131, 97, 257, 1, 0),
          (128, 576, 361, 0, 1), (7, 3, 5, 0, 0), (1024, 1024, 1024, 0, 0))
RATE_SIZE = 2048


@dataclass
class Probe:
    """One run of the probe: the kernel OpenBLAS put in effect, the SGEMM error ratio against
    numpy float64 (<= 1 is correct, see the module doc) and the 2048^3 SGEMM rate."""
    requested: str | None
    core: str | None = None
    error_ratio: float | None = None
    gflops: float | None = None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return (self.failure is None and self.error_ratio is not None
                and self.error_ratio <= 1.0
                and (self.requested is None or self.core == self.requested))


def probe(library: Path, coretype: str | None, repeats: int = 3,
          timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """Run the SGEMM probe on `library` in a subprocess, with OPENBLAS_CORETYPE=coretype
    (None: unset, i.e. OpenBLAS's own choice)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    result = Probe(requested=coretype)
    try:
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(library),
                              str(repeats)],
                             capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        result.failure = f"probe timed out after {timeout:.0f} s"
        return result
    if out.returncode != 0:
        # A negative code is the signal that killed it, e.g. -4 SIGILL: an instruction the
        # CPU does not have.
        result.failure = f"probe exited {out.returncode}: {out.stderr.strip()[-300:]}"
        return result
    try:
        data = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result.failure = f"probe printed no result: {out.stdout[-300:]}"
        return result
    result.core, result.error_ratio, result.gflops = (data["core"], data["error_ratio"],
                                                      data["gflops"])
    if coretype is not None and result.core != coretype:
        result.failure = (f"OPENBLAS_CORETYPE={coretype} not taken: OpenBLAS runs {result.core} "
                          "(unknown name, or a kernel this CPU cannot run)")
    elif result.error_ratio is None or not result.error_ratio <= 1.0:
        result.failure = (f"SGEMM differs from numpy float64 by {result.error_ratio:.3g} x the "
                          "float32 rounding bound")
    return result


# --- the program, in the fresh interpreter --------------------------------------------------
def _measure(library: str, repeats: int) -> dict:
    """The kernel `library` runs, its worst error ratio over SHAPES, its best 2048^3 rate."""
    import ctypes

    import numpy as np

    lib = ctypes.CDLL(library)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    core = lib.openblas_get_corename().decode()
    f32p = ctypes.POINTER(ctypes.c_float)
    lib.cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, f32p, ctypes.c_int, f32p,
                                                     ctypes.c_int, ctypes.c_float, f32p,
                                                     ctypes.c_int]
    lib.cblas_sgemm.restype = None
    row_major, no_trans, trans = 101, 111, 112
    u = 2.0 ** -24

    def sgemm(a, b, trans_a=False, trans_b=False):
        m = a.shape[1] if trans_a else a.shape[0]
        k = a.shape[0] if trans_a else a.shape[1]
        n = b.shape[0] if trans_b else b.shape[1]
        c = np.zeros((m, n), np.float32)
        lib.cblas_sgemm(row_major, trans if trans_a else no_trans, trans if trans_b else no_trans,
                        m, n, k, 1.0, a.ctypes.data_as(f32p), a.shape[1],
                        b.ctypes.data_as(f32p), b.shape[1], 0.0, c.ctypes.data_as(f32p), n)
        return c

    rng = np.random.default_rng(1701)
    worst = 0.0
    for (m, n, k, ta, tb) in SHAPES:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c = sgemm(a, b, bool(ta), bool(tb))
        a64 = a.astype(np.float64).T if ta else a.astype(np.float64)
        b64 = b.astype(np.float64).T if tb else b.astype(np.float64)
        exact = a64 @ b64
        scale = np.abs(a64) @ np.abs(b64)
        gamma = k * u / (1 - k * u)
        if not np.all(np.isfinite(c)):
            worst = float("inf")
            break
        worst = max(worst, float(np.max(np.abs(c - exact) / (gamma * scale))))
    size = RATE_SIZE
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    sgemm(a, b)   # warm-up: start the threads, page in
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        sgemm(a, b)
        best = min(best, time.perf_counter() - t)
    return {"core": core, "error_ratio": worst, "gflops": 2 * size ** 3 / best / 1e9}


def main(argv: list[str]) -> int:
    library, repeats = argv
    print(json.dumps(_measure(library, int(repeats))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
