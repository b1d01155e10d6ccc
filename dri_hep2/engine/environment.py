"""The environment every Caffe the toolkit runs gets (issue 14): BLAS kernel and OpenMP.

- The OpenBLAS kernel: `blas_verdict.blas_env(caffe_home)` (OPENBLAS_CORETYPE where OpenBLAS
  fell back to a generic kernel on a CPU that supports a better one, verified first).
- OpenMP (patch 10's loops, patch 11's per-image loops): OMP_WAIT_POLICY=PASSIVE. By default
  libgomp's idle threads spin for a while after each parallel region, without yielding; with
  OpenBLAS's own threads starting the next GEMM at once on the same two cores, and on a
  machine shared with other jobs, the spinning threads take the cores that the next step
  needs. Measured on DRI's training iteration while other jobs kept the load at 7-9 on 2
  cores: 8.4-34 s with the default policy, 1.9-2.9 s with PASSIVE, 2.0 s with one thread
  (docs/engine.md). Stock Caffe does not use OpenMP; the variable changes nothing there.

Variables that the user has set are never overridden.

`apply(caffe_home)` puts them into os.environ: call it before pycaffe is imported (OpenBLAS and
libgomp read them when they load) and before any Caffe subprocess is started (they inherit
them). `caffe_env.caffe_binary()` and `caffe_env.pycaffe()` do, with their own caffe_home: the
one place that computes this environment for the CLI and for pycaffe alike.
"""
from __future__ import annotations

import os
from pathlib import Path

from .blas_verdict import blas_env

OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
# Any of these set by the user means they chose libgomp's waiting themselves.
_OPENMP_USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_applied: dict[str, str] | None = None


def openmp_env(environ=None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    if any(environ.get(k) for k in _OPENMP_USER_KEYS):
        return {}
    return dict(OPENMP_ENV)


def caffe_env_vars(caffe_home: Path, environ=None) -> dict[str, str]:
    """The variables to add to the environment of a process running the Caffe installed in
    `caffe_home` (none that `environ` has)."""
    environ = os.environ if environ is None else environ
    wanted = {**blas_env(caffe_home), **openmp_env(environ)}
    return {k: v for k, v in wanted.items() if not environ.get(k)}


def apply(caffe_home: Path) -> dict[str, str]:
    """Add caffe_env_vars(caffe_home) to os.environ, once per process; returns what was added."""
    global _applied
    if _applied is None:
        _applied = caffe_env_vars(caffe_home)
        os.environ.update(_applied)
    return _applied
