"""The relocatable Caffe of `make bundle` (tools/bundle.sh): unpacked in a folder of its own,
it runs with nothing but its env.sh, and all it loads comes from itself or from the system's
C library, C++ runtime and (CUDA build) CUDA libraries."""
from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from dri_hep2.engine import caffe_env
from dri_hep2.folders import REPO_ROOT

# Extraction filters came in Python 3.11.4; Debian 12 (the image) has 3.11.2.
_FILTER = {"filter": "tar"} if hasattr(tarfile, "data_filter") else {}

REPO = REPO_ROOT
MAX_BYTES = 20 * 10 ** 6
# What a bundle may take from the target machine (tools/bundle.sh, keep_out).
SYSTEM_OK = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|"
                       r"libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|"
                       r"libcurand|libnccl)\.so")
TINY_NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 1 dim: 16 dim: 16 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def _bundle(home: Path, out: Path = REPO / "dist") -> Path:
    """`make bundle`'s tarball of that build, in dist/ (reused while newer than the build and
    the script, so tests/test_gpu_check.py and this file pack each build once)."""
    run = subprocess.run([str(REPO / "tools/bundle.sh"), "--caffe-home", str(home), "--out",
                          str(out)], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    return Path(run.stdout.strip().splitlines()[-1])


def _unpack(tarball: Path, where: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(where, **_FILTER)
    (root,) = where.iterdir()
    return root


def _bare_env(tmp: Path) -> dict:
    """No trace of the build: no LD_LIBRARY_PATH, no CAFFE*, a HOME without the build cache."""
    # GLOG_logtostderr: caffe's glog would otherwise leave log files in /tmp.
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8", "GLOG_logtostderr": "1"}


def _in_bundle(root: Path, command: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f". ./env.sh && {command}"], cwd=root,
                          capture_output=True, text=True, env=_bare_env(tmp), timeout=300)


def _check_libraries(root: Path, env: dict) -> None:
    """Every library is resolved, and the ones not left to the system come from lib/."""
    for binary in (root / "libexec/caffe", root / "libexec/test.testbin",
                   next((root / "lib").glob("libcaffe.so.*"))):
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env).stdout
        assert "not found" not in out, f"{binary}:\n{out}"
        for soname, path in re.findall(r"^\s*(\S+) => (\S+)", out, re.M):
            if not SYSTEM_OK.match(soname):
                assert path.startswith(str(root / "lib")), f"{binary}: {soname} from {path}"


@pytest.fixture(scope="module")
def cpu_bundle():
    return caffe_env.build_info(), _bundle(caffe_env.caffe_home())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cpu_bundle_runs_elsewhere_with_only_its_env(cpu_bundle, tmp_path):
    info, tarball = cpu_bundle
    assert tarball.name == f"caffe-{info['build_id']}.tar.xz"
    assert tarball.stat().st_size <= MAX_BYTES, f"{tarball.stat().st_size / 1e6:.1f} MB"
    root = _unpack(tarball, tmp_path / "x")
    assert (root / "bin/caffe").is_file() and (root / "bin/test.testbin").is_file()
    assert list((root / "lib").glob("libcaffe.so*"))
    _check_libraries(root, _bare_env(tmp_path))

    version = _in_bundle(root, "caffe --version", tmp_path)
    assert version.returncode == 0 and "caffe version 1.0.0" in version.stdout + version.stderr
    (tmp_path / "tiny.prototxt").write_text(TINY_NET)
    timed = _in_bundle(root, f"caffe time -model {tmp_path}/tiny.prototxt -iterations 3",
                       tmp_path)
    assert timed.returncode == 0, timed.stderr[-2000:]
    assert re.search(r"Average Forward-Backward: [0-9.]+ ms", timed.stderr)
    # The GTest binary travels too: one real case of it, from the unpacked folder.
    gtest = _in_bundle(root, "test.testbin --gtest_filter='SoftmaxLayerTest/0.TestGradient'",
                       tmp_path)
    assert gtest.returncode == 0 and "[  PASSED  ] 1 test." in gtest.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cuda_bundle_starts_without_a_gpu(tmp_path):
    """The CUDA build's bundle (CI builds it first with `make ci-cuda`): its caffe starts and
    answers device-free commands here, with the CUDA libraries env.sh finds in the PyPI toolkit."""
    cache = Path(os.environ.get("CAFFE_CACHE") or Path(os.environ.get(
        "XDG_CACHE_HOME", Path.home() / ".cache")) / "dri-hep2" / "caffe")
    builds = sorted((p for p in cache.glob("*/BUILD_OK")
                     if "mode=GPU" in p.read_text() and (p.parent / "bin/test.testbin").exists()),
                    key=lambda p: p.stat().st_mtime)
    if not builds:
        pytest.skip(f"no CUDA build in {cache}: `make ci-cuda` (or make setup CUDA=1) makes one")
    home = builds[-1].parent
    tarball = _bundle(home)
    assert tarball.stat().st_size <= MAX_BYTES, f"{tarball.stat().st_size / 1e6:.1f} MB"
    root = _unpack(tarball, tmp_path / "x")
    needed = (root / "cuda-libs.txt").read_text().split()
    assert {"libcudart.so.13", "libcublas.so.13", "libcurand.so.10"} <= set(needed)
    env = dict(_bare_env(tmp_path), HOME=os.environ.get("HOME", "/root"))
    run = subprocess.run(["bash", "-c", ". ./env.sh && echo \"$CAFFE_BUNDLE_LIBS\" && caffe --version"],
                         cwd=root, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "caffe version 1.0.0" in run.stdout + run.stderr
    assert run.stdout.splitlines()[0], "env.sh found no folder for the CUDA libraries"
    # CPU mode of the CUDA build: cuBLAS/cuRAND handles fail (no driver), Caffe goes on.
    (tmp_path / "tiny.prototxt").write_text(TINY_NET)
    timed = subprocess.run(["bash", "-c", f". ./env.sh && caffe time -model {tmp_path}/tiny.prototxt "
                            "-iterations 2"], cwd=root, capture_output=True, text=True, env=env,
                           timeout=300)
    assert timed.returncode == 0 and "Average Forward-Backward" in timed.stderr, timed.stderr[-2000:]
    # Told where nothing is, env.sh names what is missing instead of failing silently.
    missing = subprocess.run(["bash", "-c", ". ./env.sh"], cwd=root, capture_output=True,
                             text=True, env=_bare_env(tmp_path))
    system = subprocess.run(["bash", "-c", "ldconfig -p 2>/dev/null || /sbin/ldconfig -p"],
                            capture_output=True, text=True).stdout
    if "libcublas.so.13 " not in system:
        assert "CUDA libraries not found" in missing.stderr and "libcublas.so.13" in missing.stderr
