"""tools/gpu_check.sh, `make gpu-check`: on this machine (no GPU) its CPU parts, end to end with
a real bundle and a real kit; and the CPU/GPU comparison of its report on Caffe-format logs."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import time

import pytest

from dri_hep2.engine import caffe_env
from dri_hep2.folders import REPO_ROOT
from dri_hep2 import paper

REPO = REPO_ROOT


def _report_module():
    spec = importlib.util.spec_from_file_location("gpu_check_report",
                                                  REPO / "tools/gpu_check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_gpu_check_cpu_mode_end_to_end(tmp_path):
    # The CPU build's bundle, in dist/ like `make bundle` (reused when up to date).
    bundle = subprocess.run([str(REPO / "tools/bundle.sh"), "--caffe-home",
                             str(caffe_env.caffe_home()), "--out", str(REPO / "dist")],
                            capture_output=True, text=True, cwd=REPO)
    assert bundle.returncode == 0, bundle.stderr
    tarball = bundle.stdout.strip().splitlines()[-1]
    kit = tmp_path / "kit"
    prep = subprocess.run([str(REPO / ".venv/bin/python"), str(REPO / "tools/gpu_check_prepare.py"),
                           "--bundle", tarball, "--out", str(kit), "--scale", "0.01"],
                          capture_output=True, text=True, cwd=REPO)
    assert prep.returncode == 0, prep.stderr[-3000:]
    kit_json = json.loads((kit / "kit.json").read_text())
    assert kit_json["counts"]["test"] % kit_json["test_batch"] == 0
    assert len(kit_json["test_labels"]) == kit_json["counts"]["test"] > 0

    out = tmp_path / "out"
    start = time.monotonic()
    run = subprocess.run([str(REPO / "tools/gpu_check.sh"), "--kit", str(kit), "--out", str(out),
                          "--mode", "cpu"], capture_output=True, text=True, cwd=REPO)
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md",
                                                     "logs.tar.xz"]
    r = json.loads((out / "gpu_check.json").read_text())
    assert r["mode"] == "cpu" and r["ok"] and not r["problems"]
    assert [t["variant"] for t in r["timing"]] == list(paper.VARIANTS)
    assert all(t["gflops"] > 0 and t["ms_per_iter"] > 0 for t in r["timing"])
    assert r["paper_max_iter"] == paper.MAX_ITER
    assert all(t["paper_schedule_hours"] == pytest.approx(t["ms_per_iter"] * 290000 / 3.6e6)
               for t in r["timing"])
    assert r["sgemm"]["gflops"] > 1
    assert r["training"]["finished"] and r["training"]["last_iteration"] == 8
    assert [v["iteration"] for v in r["training"]["validation"]] == [4, 8]
    assert 0 <= r["training"]["validation"][-1]["fused/top-1"] <= 1
    a = r["agreement"]
    assert a["cpu_fused_top1_consistent"] and not a["compared"]
    assert set(a["cpu"]) >= {"loss1/loss", "loss2/loss", "loss3/loss", "fused/top-1", "loss3/top-1"}
    assert r["gtest"]["ok"] and r["gtest"]["passed"] > 20
    # Step 4b: the training again from its half-way snapshot gave the same final bytes.
    assert r["resume"] == {"ok": True, "status": "identical", "result": "identical",
                           "resumed_from": "dri_iter_4.solverstate", "final": "dri_iter_8.caffemodel"}
    assert "PASSED" in (out / "gpu_check.md").read_text().splitlines()[0]
    # CPU mode stays within its budget (300 s; about 2 minutes on 2 quiet cores) plus the report.
    assert seconds < 330, f"gpu_check.sh took {seconds:.0f} s in CPU mode"


def _caffe_test_log(outputs: dict, argmax: list[int]) -> str:
    """The lines `caffe test` writes (tools/caffe.cpp test()): per batch, then the means."""
    lines = [f"I1127 10:00:00.000000  1 caffe.cpp:310] Batch 0, fused/argmax = {p}" for p in argmax]
    lines.append("I1127 10:00:00.000000  1 caffe.cpp:315] Loss: 2.1")
    for name, value in outputs.items():
        extra = " (* 0.3 = 0.5 loss)" if name.endswith("/loss") else ""
        lines.append(f"I1127 10:00:00.000000  1 caffe.cpp:327] {name} = {value}{extra}")
    return "\n".join(lines) + "\n"


def test_report_agreement_catches_cpu_gpu_differences():
    rep = _report_module()
    labels = [0, 1, 2, 3]
    outputs = {"loss1/loss": 1.5, "loss3/loss": 0.75, "fused/top-1": 0.75, "fused/argmax": 1.25}
    cpu = rep.caffe_test(_caffe_test_log(outputs, [0, 1, 2, 5]))
    assert cpu["fused_top1"] == [0, 1, 2, 5] and cpu["outputs"]["loss3/loss"] == 0.75
    assert "fused/argmax" not in cpu["outputs"]

    same = rep.agreement(cpu, rep.caffe_test(_caffe_test_log(
        {**outputs, "loss3/loss": 0.75004}, [0, 1, 2, 5])), labels)
    assert same["ok"] and same["outputs_agree"] and same["fused_top1_identical"]

    loss_off = rep.agreement(cpu, rep.caffe_test(_caffe_test_log(
        {**outputs, "loss3/loss": 0.7502}, [0, 1, 2, 5])), labels)
    assert not loss_off["ok"] and not loss_off["outputs_agree"]

    flipped = rep.agreement(cpu, rep.caffe_test(_caffe_test_log(outputs, [0, 1, 3, 5])), labels)
    assert not flipped["ok"] and flipped["fused_top1_differing_images"] == 1

    wrong_labels = rep.agreement(cpu, None, [1, 1, 2, 3])
    assert not wrong_labels["cpu_fused_top1_consistent"] and not wrong_labels["ok"]


def test_report_resume_fails_on_differing_bytes_or_a_failed_step():
    rep = _report_module()
    facts = "resumed_from=dri_iter_1000.solverstate\nfinal=dri_iter_2000.caffemodel\n"
    assert rep.resume(facts + "result=identical\n", {"status": "0"})["ok"]
    assert not rep.resume(facts + "result=differs\n", {"status": "0"})["ok"]
    timed_out = rep.resume(facts + "result=differs\n", {"status": "124"})
    assert not timed_out["ok"] and timed_out["status"] == "stopped at its time limit"
    assert rep.resume("", None) == {"ok": False,
                                    "status": "not run (fewer than two snapshots)"}


def test_report_times_patch_14_where_gpu_check_ran_it(tmp_path):
    """GPU mode adds DRI with CAFFE_CONV_BATCH_GPU=64 (Caffe patch 14) to the timing table; a
    run without that step (CPU mode) has one row per variant only."""
    rep = _report_module()
    kit = {"sgemm_size": {"gpu": 8192, "cpu": 2048}, "variants": ["sri", "dri"],
           "batch_size": 24, "paper_max_iter": 290000,
           "flops": {"sri": {"train_flops_per_image": 2e9}, "dri": {"train_flops_per_image": 3e9}}}
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, ms in [("time_sri", 40.0), ("time_dri", 60.0), (rep.BATCHED_GPU_STEP, 45.0)]:
        (logs / f"{name}.log").write_text(f"I1207 caffe.cpp:417] Average Forward-Backward: {ms} ms.\n")
    (logs / "sgemm.log").write_text("I1207 caffe.cpp:415] Average Forward pass: 20 ms.\n")
    steps = {name: {"status": "0"} for name in ("time_sri", "time_dri", rep.BATCHED_GPU_STEP)}
    rows, sgemm = rep.timing(kit, tmp_path, steps)
    assert [r["variant"] for r in rows] == ["sri", "dri", rep.BATCHED_GPU_LABEL]
    batched = rows[-1]
    assert batched["ms_per_iter"] == 45.0 and batched["log"] == f"logs/{rep.BATCHED_GPU_STEP}.log"
    assert batched["gflops"] == pytest.approx(24 * 3e9 / 1e9 / 0.045)
    del steps[rep.BATCHED_GPU_STEP]
    assert [r["variant"] for r in rep.timing(kit, tmp_path, steps)[0]] == ["sri", "dri"]


def test_gpu_check_refuses_a_missing_kit(tmp_path):
    run = subprocess.run([str(REPO / "tools/gpu_check.sh"), "--kit", str(tmp_path / "none"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode != 0 and "make gpu-check-kit" in run.stderr
    assert not (tmp_path / "out").exists()
