"""Find and initialise the Caffe that `make setup` built: pycaffe, the `caffe` binary, CPU/GPU.

`tools/build_caffe.sh` installs Caffe into a cache folder and links it as `.caffe` in the repo;
`CAFFE_HOME` and `CAFFE` (the Makefile's variables) override where it is looked for.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import UserError
from ..folders import REPO_ROOT
from ..gpus import Gpus
from . import environment


class CaffeNotFound(UserError):
    """Caffe is not built or not where the toolkit looks; the message says what to run."""


def caffe_home() -> Path:
    return Path(os.environ.get("CAFFE_HOME", REPO_ROOT / ".caffe"))


def caffe_binary() -> Path:
    """The `caffe` command-line tool (Make variable CAFFE)."""
    path = Path(os.environ.get("CAFFE") or caffe_home() / "bin" / "caffe")
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not os.access(path, os.X_OK):
        raise CaffeNotFound(f"no caffe binary at {path}: run 'make setup' (or set CAFFE=)")
    _engine_environment()
    return path


def _engine_environment() -> None:
    """The BLAS kernel and OpenMP settings every Caffe of the toolkit runs with (`environment`,
    ledger B11), for the CLI and pycaffe alike: put into os.environ before a `caffe` subprocess
    inherits it or pycaffe loads OpenBLAS and libgomp, which read them once."""
    environment.apply(caffe_home())


def caffe_tool(name: str) -> Path:
    """Another of Caffe's installed tools, e.g. `compute_image_mean`, `convert_imageset`."""
    path = caffe_binary().parent / name
    if not os.access(path, os.X_OK):
        raise CaffeNotFound(f"Caffe tool {name} not found beside {caffe_binary()}")
    return path


def build_info() -> dict[str, str]:
    """The stamp `tools/build_caffe.sh` writes: version, mode (CPU / GPU), build id, date."""
    stamp = caffe_home() / "BUILD_OK"
    if not stamp.is_file():
        raise CaffeNotFound(f"Caffe build stamp {stamp} missing: run 'make setup'")
    return dict(line.split("=", 1) for line in stamp.read_text().splitlines() if "=" in line)


def pycaffe(quiet: bool = True):
    """The pycaffe module, imported; Caffe's mode is left as it is (CPU unless `use_device`).

    `quiet` silences glog's INFO lines for the library calls; it only takes effect at the first
    import, when glog reads its flags from the environment. The variable is restored at once,
    so `caffe train` started later from this process still logs what the toolkit parses.
    """
    _engine_environment()
    saved = os.environ.get("GLOG_minloglevel")
    if quiet and saved is None:
        os.environ["GLOG_minloglevel"] = "2"
    try:
        import caffe
    except ImportError as exc:
        raise CaffeNotFound(f"pycaffe does not import ({exc}): run 'make setup'") from exc
    finally:
        if saved is None:
            os.environ.pop("GLOG_minloglevel", None)
    return caffe


def use_device(gpus: Gpus = Gpus()):
    """pycaffe on the CPU, or on the first GPU of `gpus`; refused on a CPU-only build."""
    caffe = pycaffe()
    if gpus:
        require_gpu_build(gpus)
        caffe.set_device(gpus.first)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    return caffe


def require_gpu_build(gpus: Gpus) -> None:
    """Refuse GPU= before Caffe starts when the build cannot use a GPU, or several GPUs."""
    if not gpus:
        return
    info = build_info()
    if info.get("mode") == "CPU":
        raise CaffeNotFound(
            f"GPU={gpus} needs a CUDA build of Caffe, and {caffe_home()} is CPU-only: build "
            f"one with 'make caffe CUDA=1' (docs/gpu.md), or leave GPU empty")
    if (gpus.all or len(gpus.ids) > 1) and info.get("nccl", "0") != "1":
        # Caffe's data parallelism exchanges gradients through NCCL; without it `caffe train
        # -gpu 0,1` stops only after building the nets (ledger B6).
        raise CaffeNotFound(
            f"GPU={gpus} needs a Caffe built with NCCL (BUILD_OK nccl=1), and "
            f"{caffe_home()} has none: 'make setup CUDA=1' with the PyPI CUDA toolkit builds "
            "it with NCCL (docs/gpu.md), or train on one GPU")


def caffe_version() -> str:
    """What the `caffe` binary says of itself (`caffe --version`)."""
    out = subprocess.run([str(caffe_binary()), "--version"], capture_output=True, text=True,
                         check=True)
    return (out.stdout + out.stderr).strip().splitlines()[-1]
