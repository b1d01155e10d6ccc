"""tools/cuda_toolkit.sh: which CUDA toolkit the Caffe build takes, and which archs it allows."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dri_hep2.engine import caffe_env
from dri_hep2.folders import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "cuda_toolkit.sh"


def _run(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    # Only where the caches are (the image sets CUDA_CACHE): no system CUDA on PATH.
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           **{k: os.environ[k] for k in ("CUDA_CACHE", "XDG_CACHE_HOME") if k in os.environ},
           **env_extra}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_partial_system_cuda_is_named_and_not_used(tmp_path):
    """An nvcc without cuBLAS and cuRAND (what pip's nvcc wheel gives) must not be taken for a
    toolkit: with CUDA_ROUTE=system that is an error that says what is missing."""
    fake = tmp_path / "cuda"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.88'\n")
    (fake / "bin" / "nvcc").chmod(0o755)
    (fake / "include").mkdir()
    (fake / "include" / "curand.h").write_text("")
    run = _run({"CUDA_HOME": str(fake), "CUDA_ROUTE": "system"})
    assert run.returncode != 0
    assert f"system CUDA at {fake.resolve()} is incomplete (no cublas_v2.h libcublas.so libcurand.so)" \
        in run.stderr
    assert "CUDA_ROUTE=system but no complete CUDA toolkit" in run.stderr


def test_an_unknown_route_is_refused():
    assert "CUDA_ROUTE must be" in _run({"CUDA_ROUTE": "conda"}).stderr
    assert _run({"CUDA_ROUTE": "conda"}).returncode != 0


def _pypi_root() -> Path | None:
    cache = Path(os.environ.get("CUDA_CACHE") or Path(os.environ.get(
        "XDG_CACHE_HOME", Path.home() / ".cache")) / "dri-hep2" / "cuda")
    root = cache / "13.0" / "root"
    return root if (root / "TOOLKIT_OK").is_file() else None


@pytest.mark.skipif(_pypi_root() is None,
                    reason="no PyPI CUDA toolkit made yet (make ci-cuda or make setup CUDA=1)")
def test_pypi_toolkit_default_archs_and_refusals():
    run = _run({"CUDA_ROUTE": "pypi"})
    assert run.returncode == 0, run.stderr
    info = dict(line.split("=", 1) for line in run.stdout.splitlines())
    assert info["route"] == "pypi" and info["version"] == "13.0.88" and info["major"] == "13"
    assert info["archs"] == "75 80 86 89 90 100 120"
    assert info["nccl"] == "1" and Path(info["nccl_library"]).exists()
    for lib in ("libcudart.so", "libcublas.so", "libcurand.so", "libnccl.so"):
        assert (Path(info["root"]) / "lib64" / lib).exists(), lib
    # Pascal is gone from CUDA 13: refused before any compile, naming what it can do.
    old = _run({"CUDA_ROUTE": "pypi"}, "--arch", "60 90")
    assert old.returncode != 0
    assert "cannot compile for CUDA_ARCH=60" in old.stderr and "75 80" in old.stderr
    assert "give compute capabilities as digits" in _run({"CUDA_ROUTE": "pypi"}, "--arch", "sm_90").stderr
    # A list it can compile passes through as given (build_caffe.sh hashes it into the id).
    assert _run({"CUDA_ROUTE": "pypi"}, "--arch", "90").stdout.splitlines()[4] == "archs=90"
