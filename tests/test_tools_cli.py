"""The tools' command lines as make runs them: --help, and user errors as one line on stderr
with exit status 2 and no traceback (a new user's first mistakes: no data, no run, no build)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dri_hep2.folders import REPO_ROOT

TOOLS = sorted(p.name for p in (REPO_ROOT / "tools").glob("*.py"))


def run_tool(name: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / name), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_has_help(tool):
    out = run_tool(tool, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ") and len(out.stdout) > 150


def one_line_error(out: subprocess.CompletedProcess, tool: str, *texts: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith(f"{tool}: error: "), out.stderr
    for text in texts:
        assert text in lines[-1], out.stderr


def test_train_before_make_data(tmp_path):
    out = run_tool("train.py", "--net", "sri", "--schedule", "short", "--data-dir",
                   str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"), "--no-progress")
    one_line_error(out, "train.py", f"{tmp_path / 'data' / 'lmdb' / 'train'} missing",
                   "make data I3A=")
    assert not (tmp_path / "run").exists()


def test_eval_before_make_train(tmp_path, tiny_data_dir):
    out = run_tool("evaluate.py", "--run-dir", str(tmp_path / "run"), "--data-dir",
                   str(tiny_data_dir))
    one_line_error(out, "evaluate.py", f"no run folder {tmp_path / 'run'}", "make train")


def test_eval_without_a_test_split(tmp_path):
    (tmp_path / "run").mkdir()
    for name in ("deploy.prototxt", "train_val.prototxt"):
        (tmp_path / "run" / name).write_text("")
    out = run_tool("evaluate.py", "--run-dir", str(tmp_path / "run"), "--data-dir",
                   str(tmp_path / "data"))
    one_line_error(out, "evaluate.py", "lmdb/test missing", "make data")


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    out = run_tool("report.py", "--run-dir", str(tmp_path / "run"))
    one_line_error(out, "report.py", "run_manifest.json missing", "make train")


def test_describe_of_a_missing_prototxt(tmp_path):
    out = run_tool("describe_net.py", "--prototxt", str(tmp_path / "x.prototxt"))
    one_line_error(out, "describe_net.py", f"no prototxt at {tmp_path / 'x.prototxt'}")


@pytest.mark.parametrize("tool", ["train.py", "evaluate.py", "ablation.py"])
def test_a_bad_gpu_is_refused_by_the_parser(tool, tmp_path):
    out = run_tool(tool, "--gpu", "cuda:0", "--run-dir", str(tmp_path))
    assert out.returncode == 2 and "GPU='cuda:0'" in out.stderr
    assert "Traceback" not in out.stderr
