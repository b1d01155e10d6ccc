"""Which OpenBLAS kernel Caffe should run on, decided once per CPU and library, and cached.

`OPENBLAS_CORETYPE`, read when OpenBLAS loads, forces a kernel. For the Caffe in `caffe_home`:

1. find the OpenBLAS that its libcaffe loads (ldd) and probe the kernel it picks by itself
   (`blas_probe`: `openblas_get_corename` of that very library, in a subprocess);
2. when that kernel is of a lower class than the CPU supports (`blas_cpu`), VERIFY the better
   ones, best first, each with the probe: the kernel must be the one in effect, SGEMM through
   that library must agree with numpy float64 within float32's worst-case rounding bound, and
   it must be MIN_SPEEDUP x faster than OpenBLAS's own choice;
3. cache the `Verdict` under ${XDG_CACHE_HOME:-~/.cache}/dri-hep2/blas/<key>.json, keyed by
   the CPU (model + flags) and the library (path, size, mtime), so the check runs once per
   machine.

`blas_env(caffe_home)` returns the variables to set for every Caffe (`environment` adds them):
`{"OPENBLAS_CORETYPE": "<kernel>"}`, or `{}` when OpenBLAS's own choice is already the best
class, when nothing better passed the check, or when the user set OPENBLAS_CORETYPE already
(their choice stands). Paths come in as arguments: this module imports only its siblings of
the BLAS check and the package root's atomic writes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_text
from .blas_cpu import CLASS_NAMES, best_kernel, candidates_for, cpu_info, kernel_class
from .blas_probe import Probe, probe

# A verified kernel must also beat OpenBLAS's own choice by this factor in SGEMM rate:
# a faster class that measures slower (e.g. on a loaded machine) is not worth forcing.
MIN_SPEEDUP = 1.1
VERDICT_VERSION = 1   # bump when the check changes, so old cached verdicts are redone


@dataclass
class Verdict:
    """What `decide` found for this CPU and library, and why (cached as JSON)."""
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


# --- the library ----------------------------------------------------------------------------
def caffe_library(caffe_home: Path) -> Path | None:
    """libcaffe.so of the Caffe installed in `caffe_home` (caffe_env.caffe_home())."""
    return next(iter(sorted(Path(caffe_home).glob("lib/libcaffe.so*"))), None)


def openblas_of(library: Path) -> Path | None:
    """The libopenblas that `library` loads, as the dynamic loader resolves it (ldd)."""
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(libopenblas[^\s]*)\s*=>\s*(\S+)", line)
        if m and m.group(2) != "not":
            return Path(os.path.realpath(m.group(2)))
    return None


def caffe_openblas(caffe_home: Path) -> Path | None:
    """The libopenblas that the Caffe in `caffe_home` runs on; None without a libcaffe or
    when it loads another BLAS."""
    lib = caffe_library(caffe_home)
    return openblas_of(lib) if lib else None


# --- the cache ------------------------------------------------------------------------------
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
        loaded = Verdict(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    loaded.from_cache = True
    return loaded if loaded.version == VERDICT_VERSION else None


def _save(path: Path, found: Verdict) -> None:
    """Atomic: a concurrent run reads either no verdict or a whole one."""
    data = asdict(found)
    data.pop("from_cache")
    write_text(path, json.dumps(data, indent=1))


# --- the decision ---------------------------------------------------------------------------
def decide(library: Path, flags=None, model: str | None = None,
           detected: Probe | None = None) -> Verdict:
    """Probe OpenBLAS's own kernel and, if the CPU supports a better class, verify the
    candidates best first; choose the first that passes and is MIN_SPEEDUP x faster.
    `detected` may be given to decide as if OpenBLAS had picked that kernel (tests)."""
    cpu_model, cpu_flags = cpu_info()
    flags = cpu_flags if flags is None else frozenset(flags)
    model = cpu_model if model is None else model
    detected = detected or probe(library, None)
    result = Verdict(library=str(library), cpu_model=model, best_for_cpu=best_kernel(flags),
                     detected=detected)
    notes: list[str] = []   # why no kernel was forced, joined into the reason
    if detected.failure:
        notes.append(f"OpenBLAS's own kernel failed the check: {detected.failure}")
    names = candidates_for(flags, detected.core)
    if not names and not detected.failure:
        result.reason = (f"OpenBLAS picks {detected.core} "
                         f"({CLASS_NAMES[kernel_class(detected.core)]}), the best class this "
                         "CPU supports")
        return result
    for name in names:
        p = probe(library, name)
        result.candidates.append(p)
        if not p.ok:
            continue
        base = detected.gflops or 0.0
        if detected.ok and p.gflops < MIN_SPEEDUP * base:
            notes.append(f"{name} passed but ran {p.gflops:.0f} GFLOP/s against "
                         f"{base:.0f}: not forced")
            continue
        result.chosen = name
        result.reason = (f"OpenBLAS picks {detected.core} on this CPU; {name} verified "
                         f"(error {p.error_ratio:.3f} of the bound) and {p.gflops:.0f} GFLOP/s "
                         f"against {detected.gflops or 0:.0f}")
        return result
    result.reason = "; ".join(notes) if notes else "no better kernel passed the check: " + \
        "; ".join(f"{p.requested}: {p.failure}" for p in result.candidates if p.failure)
    return result


def cached_verdict(library: Path, refresh: bool = False) -> Verdict:
    """The verdict for the OpenBLAS `library` on this CPU: from the cache, or decided now
    (`refresh`: always) and cached."""
    model, flags = cpu_info()
    path = cache_dir() / f"{cache_key(library, model, flags)}.json"
    if not refresh and (cached := _load(path)) is not None:
        return cached
    result = decide(library, flags, model)
    _save(path, result)
    return result


def blas_env(caffe_home: Path) -> dict[str, str]:
    """The environment variables every Caffe of `caffe_home` should run with (see the module
    doc). Never raises: a failure to decide means {} (OpenBLAS's own choice)."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return {}
    try:
        library = caffe_openblas(caffe_home)
        return cached_verdict(library).env() if library else {}
    except (OSError, subprocess.SubprocessError):
        return {}
