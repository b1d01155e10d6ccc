"""The CPU and the OpenBLAS kernels it can run, ranked (issue 14, part 1).

Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernel once, when the library loads, from
CPUID. On CPUs that it does not know, e.g. an AVX-512 Xeon that reports itself only as
"Intel(R) Xeon(R) Processor", it falls back to Prescott (SSE3): SGEMM through Caffe then runs
at ~62 GFLOP/s where the SkylakeX kernel gives ~309 on the same 2 cores. This module reads the
CPU's flags (/proc/cpuinfo) and ranks the kernels that OpenBLAS 0.3.21 knows by class
(AVX-512: Cooperlake, SkylakeX; AVX2+FMA: Haswell; AVX: Sandybridge; SSE: Prescott and older),
so that `blas_verdict` knows which kernels are worth verifying. Pure: no subprocess, no
package import.
"""
from __future__ import annotations

import re
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
