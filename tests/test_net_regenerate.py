"""The committed prototxts and solvers are exactly what the generator writes (issue 3)."""
from __future__ import annotations

import pytest

from dri_hep2 import paper
from dri_hep2.folders import REPO_ROOT
from dri_hep2.experiment import committed


@pytest.mark.parametrize("variant", paper.VARIANTS)
def test_committed_files_match_the_generator(variant):
    """Regenerating must not change a committed file: run `make nets` and commit if it does."""
    for rel, text in committed.committed_files(variant).items():
        path = REPO_ROOT / rel
        assert path.is_file(), f"{rel} missing: run 'make nets'"
        assert path.read_text() == text, f"{rel} is stale: run 'make nets' and commit"


def test_generate_writes_every_file(tmp_path):
    written = committed.generate(tmp_path, ("sri",))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "prototxt/sri_deploy.prototxt", "prototxt/sri_short_train_val.prototxt",
        "prototxt/sri_train_val.prototxt",
        "solver/sri_short_solver.prototxt", "solver/sri_solver.prototxt"]
