"""Find and initialise the Caffe that `make setup` built: pycaffe, the `caffe` binary, CPU/GPU.

`tools/build_caffe.sh` installs Caffe into a cache folder and links it as `.caffe` in the repo;
`CAFFE_HOME` and `CAFFE` (the Makefile's variables) override where it is looked for.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class CaffeNotFound(RuntimeError):
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
    return path


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


def import_caffe(gpu: int | None = None, quiet: bool = True):
    """Import pycaffe and select CPU, or the GPU with the given id.

    `quiet` silences glog's INFO lines for the library calls; it only takes effect at the first
    import, when glog reads its flags from the environment. The variable is restored at once,
    so `caffe train` started later from this process still logs what the toolkit parses.
    """
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
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(gpu)
        caffe.set_mode_gpu()
    return caffe


def caffe_version() -> str:
    """What the `caffe` binary says of itself (`caffe --version`)."""
    out = subprocess.run([str(caffe_binary()), "--version"], capture_output=True, text=True,
                         check=True)
    return (out.stdout + out.stderr).strip().splitlines()[-1]
