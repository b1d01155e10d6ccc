"""Caffe's own GTest cases for every layer type of our nets (bin/test.testbin, `make caffe-test`).

The CPU cases, all of them: typed tests /0 (float) and /1 (double), about 20 s on 2 cores.
The GPU cases (/2, /3) run where a GPU is: `make caffe-test` there, and tools/gpu_check.sh.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from dri_hep2.engine import caffe_env
from dri_hep2.folders import REPO_ROOT

REPO = REPO_ROOT
SCRIPT = REPO / "tools" / "caffe_test.sh"

# One case per layer type the DRI nets use, that must have run and passed.
MUST_PASS = (
    "ConvolutionLayerTest/0.TestGradient",          # Convolution
    "BatchNormLayerTest/0.TestForward",             # BatchNorm
    "ScaleLayerTest/0.TestGradientEltwise",         # Scale (bias term)
    "NeuronLayerTest/0.TestPReLUGradient",          # PReLU
    "NeuronLayerTest/1.TestDropoutHalf",            # Dropout
    "PoolingLayerTest/0.TestGradientMax",           # Pooling (max)
    "PoolingLayerTest/0.TestGradientAve",           # Pooling (average)
    "ConcatLayerTest/0.TestGradientChannels",       # Concat
    "SliceLayerTest/0.TestGradientAcrossChannels",  # Slice (zero-pad shortcuts)
    "EltwiseLayerTest/0.TestSumCoeffGradient",      # Eltwise SUM
    "InnerProductLayerTest/0.TestGradient",         # InnerProduct
    "SoftmaxLayerTest/0.TestGradient",              # Softmax
    "SoftmaxWithLossLayerTest/0.TestGradient",      # SoftmaxWithLoss
    "AccuracyLayerTest/0.TestForwardTopK",          # Accuracy
    "DataLayerTest/0.TestReadLMDB",                 # Data on LMDB
    # Patch 12 (exact resume): the stream continued per solver rank, whole-or-absent writes,
    # a net with Dropout trained straight and restored half-way, bit for bit.
    "DataRepositionTest/0.TestEachSolverRankAtItsOwnOffset",
    "WriteProtoToBinaryFileTest.TestReplacesWholeAndLeavesNoTemporary",
    "SolverResumeTest/0.TestResumedRunEqualsStraightRun",
    "SolverResumeTest/1.TestResumedRunEqualsStraightRun",
)


@pytest.mark.timeout(600)
def test_caffe_gtest_cpu_cases_pass(tmp_path):
    log = tmp_path / "gtest"
    run = subprocess.run([str(SCRIPT), "cpu", "--log", str(log)], capture_output=True,
                         text=True, cwd=REPO)
    summary = re.search(r"^caffe-test: (\d+) passed, (\d+) failed$", run.stdout, re.M)
    assert summary, f"no summary line from {SCRIPT}:\n{run.stdout}\n{run.stderr}"
    passed, failed = map(int, summary.groups())
    assert run.returncode == 0 and failed == 0, f"{failed} GTest cases failed:\n{run.stderr}"
    text = (tmp_path / "gtest.cpu").read_text()
    ok = set(re.findall(r"^\[       OK \] (\S+) \(", text, re.M))
    missing = [case for case in MUST_PASS if case not in ok]
    assert not missing, f"these layer cases did not run and pass: {missing}"
    assert passed == len(ok)
    # No GPU case slipped into the CPU run.
    assert not [c for c in ok if re.search(r"/[23]\.|GPU", c)]


def test_caffe_test_reports_failure_when_nothing_matches(tmp_path):
    """The counting itself: a filter that selects nothing is a failure, not a silent pass."""
    run = subprocess.run([str(SCRIPT), "cpu", "--log", str(tmp_path / "g")], capture_output=True,
                         text=True, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "CAFFE_TEST_FILTER": "*"})
    assert "caffe-test: 0 passed, 0 failed" in run.stdout
    assert run.returncode != 0
