"""`make demo` end to end (slow): synthetic replica, data, short CPU training of DRI, eval,
report; MCA >= 0.90 on the synthetic test split and every report file present."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dri_hep2.engine import caffe_env
from dri_hep2.experiment import demo_range
from dri_hep2.folders import REPO_ROOT


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_demo_reaches_mca_090_and_writes_the_report(tmp_path):
    data_dir, run_dir = tmp_path / "data", tmp_path / "run"
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "demo.py"), "--data-dir",
         str(data_dir), "--run-dir", str(run_dir), "--no-progress"],
        capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-2:] == [f"[demo] report: {run_dir / 'README.md'}",
                                             f"[demo] {demo_range.expectation()}"]
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["mca"] >= 0.90, result["combos"]
    assert set(result["combos"]) == {"3", "1+3", "2+3", "1+2+3"}
    for name in ("eval.md", "confusion.png", "curves.png", "log.csv", "README.md",
                 "run_manifest.json", "train.log", "demo_timing.json", "solver.prototxt",
                 "train_val.prototxt", "deploy.prototxt"):
        assert (run_dir / name).stat().st_size > 0, name
    manifest = json.loads((run_dir / "run_manifest.json").read_text())
    assert manifest["sessions"][-1]["outcome"] == "finished"


def test_the_readme_gives_the_demo_s_expected_range():
    """Issue 20: the README states the range the demo ends with, from the one series."""
    low, high = demo_range.SERIES.expected
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"MCA {low:.0f}-{high:.0f} %" in readme
    assert f"{demo_range.SERIES.mean:.2f} ± {demo_range.SERIES.sd:.2f}" in readme
    assert low < demo_range.SERIES.mean < high
