"""A real one-node Slurm for the tests (tools/slurm_local.sh): munged, slurmctld and slurmd on
localhost, every file in a fresh state folder under /tmp, stopped when the module's tests end.

    from slurm_cluster import slurm_cluster  # noqa: F401  (the fixture)

    def test_something(slurm_cluster): ...   # SLURM_CONF is set while the module runs

slurm_local.sh installs Debian's slurm-wlm and munge itself when it runs as root (CI's fresh
machines), so the tests skip only where they cannot run at all: Slurm missing and no root to
install it. Anything else that keeps the cluster from starting fails the tests, with the
script's output.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from dri_hep2.folders import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "slurm_local.sh"
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
# Time for `up` to install the packages with apt (seconds on a fresh machine, longer while
# another apt holds dpkg's lock) and for the node to come up.
UP_TIMEOUT = 900


def unavailable() -> str | None:
    """Why the tests cannot have a cluster here, or None."""
    # The daemons live in /usr/sbin, which a user's PATH may lack (slurm_local.sh adds it).
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = [p for p in PROGRAMS if shutil.which(p, path=path) is None]
    if missing and os.geteuid() != 0:
        return (f"Slurm tests need Debian's slurm-wlm and munge ({', '.join(missing)} missing) "
                "and are not root to install them: sudo apt-get install slurm-wlm munge")
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    """{"SLURM_CONF": <its slurm.conf>}, also set in os.environ while the module runs."""
    if reason := unavailable():
        pytest.skip(reason)
    # Short and under /tmp: munge's and slurmd's unix sockets live in it (about 108 bytes).
    state = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    env = {"SLURM_CONF": str(state / "slurm.conf")}
    try:
        up = subprocess.run(["bash", str(SCRIPT), "up", str(state)], capture_output=True,
                            text=True, timeout=UP_TIMEOUT)
        if up.returncode != 0:
            pytest.fail(f"tools/slurm_local.sh up {state} exited with {up.returncode}:\n"
                        f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}", pytrace=False)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", env["SLURM_CONF"])
            yield env
    finally:
        # Always, also when `up` failed half way or timed out: no daemon outlives the tests.
        down = subprocess.run(["bash", str(SCRIPT), "down", str(state)], capture_output=True,
                              text=True, timeout=120)
        if down.returncode == 0:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"tools/slurm_local.sh down {state} exited with {down.returncode}: "
                  f"{down.stderr[-2000:]}")
