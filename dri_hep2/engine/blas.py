"""The OpenBLAS kernel that Caffe runs on, and the right one for this CPU (issue 14, part 1).

Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernel once, when the library loads, from
CPUID. On CPUs that it does not know, e.g. an AVX-512 Xeon that reports itself only as
"Intel(R) Xeon(R) Processor", it falls back to Prescott (SSE3): SGEMM through Caffe then runs
at ~62 GFLOP/s where the SkylakeX kernel gives ~309 on the same 2 cores. `OPENBLAS_CORETYPE`,
read at load time, forces a kernel. This module

1. reads the CPU's flags (/proc/cpuinfo) and ranks the kernels that OpenBLAS 0.3.21 knows
   (AVX-512: Cooperlake, SkylakeX; AVX2+FMA: Haswell; AVX: Sandybridge);
2. finds the OpenBLAS that libcaffe loads (ldd) and the kernel it picks by itself
   (`openblas_get_corename` of that very library, in a subprocess);
3. when that kernel is of a lower class than the CPU supports, VERIFIES the better one in a
   subprocess (a crash there cannot kill the caller): the kernel must be the one in effect,
   and SGEMM through that library must agree with numpy float64 within the worst-case
   rounding bound of float32 dot products (below), and must be faster;
4. caches the verdict under ${XDG_CACHE_HOME:-~/.cache}/dri-hep2/blas/, keyed by the CPU
   (model + flags) and the library (path, size, mtime), so the check runs once per machine.

`blas_env()` returns the variables to set for every Caffe (CLI subprocesses, and os.environ
before pycaffe is imported): `{"OPENBLAS_CORETYPE": "<kernel>"}`, or `{}` when OpenBLAS's own
choice is already the best class, when nothing better passed the check, or when the user set
OPENBLAS_CORETYPE already (their choice stands). `report()` gives the rows `make doctor` prints.

The error bound. For C = A B with K terms per element, any float32 summation order (FMA or
not) satisfies |C - AB| <= gamma_K |A| |B| element-wise, gamma_K = K u / (1 - K u), u = 2^-24
(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.13). We compute
AB and |A||B| in float64 (exact enough: their own error is ~2^-53 relative) and report
ratio = max_ij |C - AB|_ij / (gamma_K (|A||B|)_ij). A correct kernel has ratio <= 1 whatever
its blocking; in practice ~0.01-0.05, as rounding errors partly cancel. A kernel that
computes wrongly (or an instruction the CPU lacks: the probe dies) fails the check.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Kernel classes OpenBLAS 0.3.21's DYNAMIC_ARCH x86_64 build knows, by the widest vector
# extension its SGEMM kernel uses (driver/others/dynamic.c, kernel/x86_64/KERNEL.*).
# 3: AVX-512, 2: AVX2 + FMA, 1: AVX, 0: SSE only (Prescott and older, the fallback).
KERNEL_CLASS = {
    "SapphireRapids": 3, "Cooperlake": 3, "SkylakeX": 3,
    "Haswell": 2, "Zen": 2, "Excavator": 2,
    "Sandybridge": 1, "Bulldozer": 1, "Piledriver": 1, "Steamroller": 1,
    "Prescott": 0, "Core2": 0, "Penryn": 0, "Dunnington": 0, "Nehalem": 0, "Atom": 0,
    "Katmai": 0, "Coppermine": 0, "Northwood": 0, "Banias": 0, "Athlon": 0, "Opteron": 0,
    "Opteron_SSE3": 0, "Barcelona": 0, "Nano": 0, "Bobcat": 0,
}
CLASS_NAMES = {3: "AVX-512", 2: "AVX2+FMA", 1: "AVX", 0: "SSE"}
# The kernels we may choose, best first, with the CPU flags each one's code needs
# (OpenBLAS's own checks in dynamic.c: support_avx512(), support_avx2(), support_avx()).
CANDIDATES = (
    ("Cooperlake", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"}),
    ("SkylakeX", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
    ("Haswell", {"avx2", "fma"}),
    ("Sandybridge", {"avx"}),
)
# A verified kernel must also beat OpenBLAS's own choice by this factor in SGEMM rate:
# a faster class that measures slower (e.g. on a loaded machine) is not worth forcing.
MIN_SPEEDUP = 1.1
VERDICT_VERSION = 1   # bump when the check changes, so old cached verdicts are redone
PROBE_TIMEOUT_S = 120

# The probe runs in a fresh interpreter, with OPENBLAS_CORETYPE set (or not) before the
# library loads. It calls cblas_sgemm of that library directly, the routine Caffe's
# caffe_cpu_gemm calls.
_PROBE = r'''
import ctypes, json, sys, time
import numpy as np
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = ctypes.c_char_p
core = lib.openblas_get_corename().decode()
f32p = ctypes.POINTER(ctypes.c_float)
lib.cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, f32p, ctypes.c_int, f32p,
                             ctypes.c_int, ctypes.c_float, f32p, ctypes.c_int]
lib.cblas_sgemm.restype = None
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
u = 2.0 ** -24

def sgemm(a, b, trans_a=False, trans_b=False):
    m = a.shape[1] if trans_a else a.shape[0]
    k = a.shape[0] if trans_a else a.shape[1]
    n = b.shape[0] if trans_b else b.shape[1]
    c = np.zeros((m, n), np.float32)
    p = lambda x: x.ctypes.data_as(f32p)
    lib.cblas_sgemm(ROW_MAJOR, TRANS if trans_a else NO_TRANS, TRANS if trans_b else NO_TRANS,
                    m, n, k, 1.0, p(a), a.shape[1], p(b), b.shape[1], 0.0, p(c), n)
    return c

rng = np.random.default_rng(1701)
worst = 0.0
# Shapes of Caffe's convolution GEMMs (odd sizes exercise every edge path of the kernel),
# both transposes the conv backward pass uses, and one large square multiply.
for (m, n, k, ta, tb) in [(64, 1444, 49, 0, 0), (96, 361, 1728, 0, 0), (131, 97, 257, 1, 0),
                          (128, 576, 361, 0, 1), (7, 3, 5, 0, 0), (1024, 1024, 1024, 0, 0)]:
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
size = 2048
a = rng.standard_normal((size, size)).astype(np.float32)
b = rng.standard_normal((size, size)).astype(np.float32)
sgemm(a, b)   # warm-up: start the threads, page in
best = float("inf")
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    sgemm(a, b)
    best = min(best, time.perf_counter() - t)
print(json.dumps({"core": core, "error_ratio": worst, "gflops": 2 * size ** 3 / best / 1e9}))
'''


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


@dataclass
class Verdict:
    """What `blas_env` decided for this CPU and library, and why (cached as JSON)."""
    library: str
    cpu_model: str
    best_for_cpu: str | None           # the best kernel the CPU's flags allow
    detected: Probe                    # OpenBLAS's own choice (OPENBLAS_CORETYPE unset)
    candidates: list[Probe] = field(default_factory=list)
    chosen: str | None = None          # None: keep OpenBLAS's own choice
    reason: str = ""
    version: int = VERDICT_VERSION
    from_cache: bool = False

    def env(self) -> dict[str, str]:
        return {"OPENBLAS_CORETYPE": self.chosen} if self.chosen else {}


# --- the CPU --------------------------------------------------------------------------------
def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU listed."""
    model, flags = "unknown", frozenset()
    text = Path(path).read_text()
    if m := re.search(r"^model name\s*:\s*(.*)$", text, re.M):
        model = m.group(1).strip()
    if m := re.search(r"^flags\s*:\s*(.*)$", text, re.M):
        flags = frozenset(m.group(1).split())
    return model, flags


def best_kernel(flags: frozenset[str] | set[str]) -> str | None:
    """The best OpenBLAS 0.3.21 kernel whose instructions the CPU has (None: SSE only)."""
    for name, needs in CANDIDATES:
        if needs <= set(flags):
            return name
    return None


def kernel_class(name: str | None) -> int:
    """0-3 (see KERNEL_CLASS); an unknown name counts as the lowest class."""
    return KERNEL_CLASS.get(name or "", 0)


def candidates_for(flags, detected: str | None) -> list[str]:
    """Kernels worth trying, best first: those the CPU can run that are of a higher class
    than OpenBLAS's own choice. Empty when OpenBLAS already picked the best class."""
    return [name for name, needs in CANDIDATES
            if needs <= set(flags) and kernel_class(name) > kernel_class(detected)]


# --- the library ----------------------------------------------------------------------------
def caffe_library(caffe_home: Path | None = None) -> Path | None:
    """libcaffe.so of the Caffe the toolkit runs (caffe_env.caffe_home())."""
    if caffe_home is None:
        from .caffe_env import caffe_home as home
        caffe_home = home()
    return next(iter(sorted(Path(caffe_home).glob("lib/libcaffe.so*"))), None)


def openblas_of(library: Path) -> Path | None:
    """The libopenblas that `library` loads, as the dynamic loader resolves it (ldd)."""
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(libopenblas[^\s]*)\s*=>\s*(\S+)", line)
        if m and m.group(2) != "not":
            return Path(os.path.realpath(m.group(2)))
    return None


def probe(library: Path, coretype: str | None, repeats: int = 3,
          timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """Run the SGEMM probe on `library` in a subprocess, with OPENBLAS_CORETYPE=coretype
    (None: unset, i.e. OpenBLAS's own choice)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    result = Probe(requested=coretype)
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE, str(library), str(repeats)],
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
    result.core, result.error_ratio, result.gflops = data["core"], data["error_ratio"], data["gflops"]
    if coretype is not None and result.core != coretype:
        result.failure = (f"OPENBLAS_CORETYPE={coretype} not taken: OpenBLAS runs {result.core} "
                          "(unknown name, or a kernel this CPU cannot run)")
    elif result.error_ratio is None or not result.error_ratio <= 1.0:
        result.failure = (f"SGEMM differs from numpy float64 by {result.error_ratio:.3g} x the "
                          "float32 rounding bound")
    return result


# --- decision and cache ---------------------------------------------------------------------
def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dri-hep2" / "blas"


def cache_key(library: Path, model: str, flags) -> str:
    """Changes with the CPU (model, flags) and the library file (path, size, mtime)."""
    st = library.stat()
    text = "\n".join([str(VERDICT_VERSION), model, " ".join(sorted(flags)),
                      str(library), str(st.st_size), str(st.st_mtime_ns)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _load(path: Path) -> Verdict | None:
    try:
        data = json.loads(path.read_text())
        data["detected"] = Probe(**data["detected"])
        data["candidates"] = [Probe(**p) for p in data["candidates"]]
        verdict = Verdict(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    verdict.from_cache = True
    return verdict if verdict.version == VERDICT_VERSION else None


def _save(path: Path, verdict: Verdict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(verdict)
    data.pop("from_cache")
    # Atomic: a concurrent run reads either no verdict or a whole one.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(data, f, indent=1)
    os.replace(f.name, path)


def decide(library: Path, flags=None, model: str | None = None,
           detected: Probe | None = None) -> Verdict:
    """Probe OpenBLAS's own kernel and, if the CPU supports a better class, verify the
    candidates best first; choose the first that passes and is MIN_SPEEDUP x faster.
    `detected` may be given to decide as if OpenBLAS had picked that kernel (tests)."""
    cpu_model, cpu_flags = cpu_info()
    flags = cpu_flags if flags is None else frozenset(flags)
    model = cpu_model if model is None else model
    detected = detected or probe(library, None)
    verdict = Verdict(library=str(library), cpu_model=model, best_for_cpu=best_kernel(flags),
                      detected=detected)
    if detected.failure:
        verdict.reason = f"OpenBLAS's own kernel failed the check: {detected.failure}"
    names = candidates_for(flags, detected.core)
    if not names and not detected.failure:
        verdict.reason = (f"OpenBLAS picks {detected.core} ({CLASS_NAMES[kernel_class(detected.core)]}),"
                          f" the best class this CPU supports")
        return verdict
    for name in names:
        p = probe(library, name)
        verdict.candidates.append(p)
        if not p.ok:
            continue
        base = detected.gflops or 0.0
        if detected.ok and p.gflops < MIN_SPEEDUP * base:
            verdict.reason += (f"; {name} passed but ran {p.gflops:.0f} GFLOP/s against "
                               f"{base:.0f}: not forced")
            continue
        verdict.chosen = name
        verdict.reason = (f"OpenBLAS picks {detected.core} on this CPU; {name} verified "
                          f"(error {p.error_ratio:.3f} of the bound) and {p.gflops:.0f} GFLOP/s "
                          f"against {detected.gflops or 0:.0f}")
        break
    else:
        if not verdict.reason:
            verdict.reason = "no better kernel passed the check: " + "; ".join(
                f"{p.requested}: {p.failure}" for p in verdict.candidates if p.failure)
    return verdict


def verdict(library: Path | None = None, refresh: bool = False) -> Verdict | None:
    """The cached verdict for the OpenBLAS of `library` (default: libcaffe's), deciding and
    caching it on first use. None when there is no Caffe or it does not load OpenBLAS."""
    if library is None:
        lib = caffe_library()
        library = openblas_of(lib) if lib else None
    if library is None:
        return None
    model, flags = cpu_info()
    path = cache_dir() / f"{cache_key(library, model, flags)}.json"
    if not refresh and (cached := _load(path)) is not None:
        return cached
    result = decide(library, flags, model)
    _save(path, result)
    return result


def blas_env(library: Path | None = None) -> dict[str, str]:
    """The environment variables every Caffe should run with (see the module doc).
    Never raises: a failure to decide means {} (OpenBLAS's own choice)."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return {}
    try:
        v = verdict(library)
    except (OSError, subprocess.SubprocessError):
        return {}
    return v.env() if v else {}


# --- rates for `make doctor` ----------------------------------------------------------------
def numpy_sgemm_gflops(size: int = 2048, repeats: int = 3) -> float:
    """numpy's own BLAS (the OpenBLAS its wheel bundles), float32 size^3, best of `repeats`."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size ** 3 / best / 1e9


def caffe_sgemm_gflops(caffe_bin: Path, env: dict[str, str], size: int = 2048,
                       iterations: int = 5) -> float:
    """SGEMM through the Caffe CLI: `caffe time` of a size^3 InnerProduct (no bias), the
    caffe_cpu_gemm -> OpenBLAS sgemm path of Caffe's convolutions, under `env`."""
    text = ("layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: %d dim: %d } } }\n"
            "layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y' inner_product_param {"
            " num_output: %d bias_term: false weight_filler { type: 'gaussian' std: 0.01 } } }\n"
            % (size, size, size))
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text)
    try:
        full = dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1")
        full.pop("OPENBLAS_CORETYPE", None)
        full.update(env)
        out = subprocess.run([str(caffe_bin), "time", "-model", f.name, "-iterations",
                              str(iterations)], capture_output=True, text=True, env=full)
    finally:
        os.unlink(f.name)
    m = re.search(r"\sip\s+forward: ([0-9.]+) ms", out.stderr + out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"caffe time of the SGEMM net failed ({out.returncode}): "
                           + (out.stderr + out.stdout)[-800:])
    return 2 * size ** 3 / (float(m.group(1)) / 1000) / 1e9


def report(caffe_bin: Path | None = None, library: Path | None = None,
           rates: bool = True) -> list[tuple[str, str]]:
    """Rows for `make doctor`: the OpenBLAS Caffe loads, the kernel it picks and the one
    chosen, the check, and SGEMM GFLOP/s of Caffe (own kernel / chosen) beside numpy's."""
    rows: list[tuple[str, str]] = []
    if library is None:
        lib = caffe_library()
        library = openblas_of(lib) if lib else None
    if library is None:
        return [("OpenBLAS", "libcaffe does not load libopenblas: no kernel check")]
    v = verdict(library)
    model, flags = cpu_info()
    rows.append(("CPU", f"{model}; best OpenBLAS 0.3.21 kernel for its flags: "
                        f"{v.best_for_cpu or 'none (SSE only)'}"))
    rows.append(("OpenBLAS (Caffe's)", str(library)))
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
    if rates:
        if caffe_bin is None:
            from .caffe_env import caffe_binary
            caffe_bin = caffe_binary()
        own = caffe_sgemm_gflops(caffe_bin, {})
        line = f"own kernel {own:.0f}"
        if v.chosen:
            line += f", {v.chosen} {caffe_sgemm_gflops(caffe_bin, v.env()):.0f}"
        rows.append(("SGEMM GFLOP/s", f"Caffe ({line}); numpy {numpy_sgemm_gflops():.0f} "
                                      f"(2048^3, {os.cpu_count()} CPUs)"))
    return rows


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Check Caffe's OpenBLAS kernel; print the verdict.")
    ap.add_argument("--refresh", action="store_true", help="decide again, ignoring the cache")
    ap.add_argument("--no-rates", action="store_true", help="skip the SGEMM rate measurements")
    args = ap.parse_args(argv)
    if args.refresh:
        verdict(refresh=True)
    for name, value in report(rates=not args.no_rates):
        print(f"{name:<20} {value}")
    print("environment for Caffe:", blas_env() or "{} (OpenBLAS's own choice)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
