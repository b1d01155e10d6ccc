#!/usr/bin/env python3
"""Read the logs of tools/gpu_check.sh and write gpu_check.json and gpu_check.md.

Standard library only: it runs on the GPU machine's plain python3 (no numpy, lmdb or pycaffe
needed). Exit status 0 when every check passed, 1 otherwise; the reasons are in the report.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

TOLERANCE = 1e-4          # CPU / GPU agreement of losses and accuracies
_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf|-nan)"
_FB = re.compile(r"Average Forward-Backward:\s*(" + _NUM + r")\s*ms")
_FWD = re.compile(r"Average Forward pass:\s*(" + _NUM + r")\s*ms")
_TESTING = re.compile(r"Iteration (\d+), Testing net \(#0\)")
_TEST_OUT = re.compile(r"Test net output #\d+: (\S+) = (" + _NUM + ")")
_TRAIN_LOSS = re.compile(r"Iteration (\d+) \(.*\), loss = (" + _NUM + ")")
_BATCH = re.compile(r"\] Batch (\d+), (\S+) = (" + _NUM + ")")
_FINAL = re.compile(r"\] (\S+) = (" + _NUM + r")(?: \(\* .*\))?\s*$")
_GT_PASSED = re.compile(r"^\[  PASSED  \] (\d+) tests?\.", re.M)
_GT_FAILED = re.compile(r"^\[  FAILED  \] (\d+) tests?, listed below", re.M)
_GT_FAILED_NAME = re.compile(r"^\[  FAILED  \] (\S+\.\S+)", re.M)
_GT_OK = re.compile(r"^\[       OK \] ", re.M)


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def steps(work: Path) -> dict[str, dict]:
    out = {}
    for line in read(work / "steps.tsv").splitlines():
        name, rc, secs = line.split("\t")
        out[name] = {"status": rc, "seconds": int(secs)}
    return out


def status_text(step: dict | None) -> str:
    if step is None:
        return "not run"
    return {"0": "ok", "124": "stopped at its time limit", "skipped": "skipped (budget spent)"}.get(
        step["status"], f"failed (exit {step['status']})")


def device(log: str) -> dict:
    """`caffe device_query` lines: `Name:   NVIDIA H100 ...`."""
    info = {}
    for line in log.splitlines():
        m = re.search(r"\] (Device id|Major revision number|Minor revision number|Name|"
                      r"Total global memory|Number of multiprocessors|Clock rate):\s*(.*)$", line)
        if m:
            info[m.group(1)] = m.group(2).strip()
    return info


def gtest(log: str, step: dict | None) -> dict:
    passed = _GT_PASSED.findall(log)
    failed = _GT_FAILED.findall(log)
    names = sorted(set(_GT_FAILED_NAME.findall(log)))
    res = {"status": status_text(step), "complete": bool(passed)}
    if passed:
        res.update(passed=int(passed[-1]), failed=int(failed[-1]) if failed else 0)
    else:   # stopped or crashed before gtest's summary: count what finished
        res.update(passed=len(_GT_OK.findall(log)), failed=len(names))
    res["failed_cases"] = names
    res["ok"] = res["complete"] and res["failed"] == 0 and res["passed"] > 0
    return res


# tools/gpu_check.sh's step that times DRI with CAFFE_CONV_BATCH_GPU=64 (Caffe patch 14, off by
# default until a GPU has measured it).
BATCHED_GPU_STEP = "time_dri_conv_batch_gpu"
BATCHED_GPU_LABEL = "dri, CAFFE_CONV_BATCH_GPU=64 (patch 14)"


def timing(kit: dict, work: Path, all_steps: dict) -> tuple[list[dict], dict]:
    mode_size = kit["sgemm_size"][MODE]
    m = _FWD.search(read(work / "logs/sgemm.log"))
    sgemm = {"size": mode_size, "status": status_text(all_steps.get("sgemm"))}
    if m:
        ms = float(m.group(1))
        sgemm.update(ms=ms, gflops=2 * mode_size ** 3 / (ms / 1000) / 1e9)
    rows = []
    batch = kit["batch_size"]
    # (label, variant, step): each variant, then DRI with Caffe patch 14's batched GPU
    # convolution on, where gpu_check.sh ran that step (GPU mode only).
    runs = [(v, v, f"time_{v}") for v in kit["variants"]]
    if BATCHED_GPU_STEP in all_steps:
        runs.append((BATCHED_GPU_LABEL, "dri", BATCHED_GPU_STEP))
    for label, v, step_name in runs:
        row = {"variant": label, "batch": batch, "log": f"logs/{step_name}.log",
               "status": status_text(all_steps.get(step_name))}
        m = _FB.search(read(work / row["log"]))
        if m:
            ms = float(m.group(1))
            gflop = batch * kit["flops"][v]["train_flops_per_image"] / 1e9
            row.update(ms_per_iter=ms, gflop_per_iter=gflop, gflops=gflop / (ms / 1000),
                       # Section 2.3's whole schedule at this rate (caffe time, no validation)
                       paper_schedule_hours=ms * kit["paper_max_iter"] / 3.6e6)
            if "gflops" in sgemm:
                row["of_sgemm"] = row["gflops"] / sgemm["gflops"]
        rows.append(row)
    return rows, sgemm


def training(log: str, step: dict | None, kit: dict) -> dict:
    tests, current = [], None
    for line in log.splitlines():
        m = _TESTING.search(line)
        if m:
            current = {"iteration": int(m.group(1))}
            tests.append(current)
            continue
        m = _TEST_OUT.search(line)
        if m and current is not None:
            current[m.group(1)] = float(m.group(2))
    losses = [(int(i), float(v)) for i, v in _TRAIN_LOSS.findall(log)]
    target = kit["schedule"][MODE]["max_iter"]
    reached = [i for i, _ in losses] + [t["iteration"] for t in tests] + \
        [int(i) for i in re.findall(r"Snapshotting to binary proto file \S+_iter_(\d+)\.caffemodel", log)]
    res = {"status": status_text(step), "max_iter": target, "validation": tests,
           "finished": "Optimization Done" in log,
           "last_iteration": max(reached, default=0),
           "train_loss_first": losses[0][1] if losses else None,
           "train_loss_last": losses[-1][1] if losses else None}
    if step and res["finished"] and step["seconds"]:
        res["seconds"] = step["seconds"]
        res["ms_per_iter_with_setup"] = 1000 * step["seconds"] / target
    res["ok"] = res["finished"] and res["last_iteration"] >= target and bool(tests)
    return res


def caffe_test(log: str) -> dict:
    """Final mean of every output, and the fused top-1 of every image in order."""
    finals, argmax = {}, []
    tail = log.split("] Loss: ", 1)
    for line in log.splitlines():
        m = _BATCH.search(line)
        if m and m.group(2) == "fused/argmax":
            argmax.append(int(float(m.group(3))))
    if len(tail) == 2:
        for line in tail[1].splitlines()[1:]:
            m = _FINAL.search(line)
            if m:
                finals[m.group(1)] = float(m.group(2))
    finals.pop("fused/argmax", None)
    return {"outputs": finals, "fused_top1": argmax}


def agreement(cpu: dict, gpu: dict | None, labels: list[int]) -> dict:
    res: dict = {"tolerance": TOLERANCE}
    pred = cpu["fused_top1"]
    n = len(labels)
    # The per-image fused predictions must reproduce Caffe's own fused accuracy: this checks
    # the parse (and the kit's labels) in CPU mode too.
    if pred and len(pred) == n and "fused/top-1" in cpu["outputs"]:
        acc = sum(p == t for p, t in zip(pred, labels)) / n
        res["cpu_fused_top1_from_predictions"] = acc
        res["cpu_fused_top1_consistent"] = abs(acc - cpu["outputs"]["fused/top-1"]) <= 1e-5
    else:
        res["cpu_fused_top1_consistent"] = False
        res["problem"] = (f"CPU caffe test gave {len(pred)} fused predictions for {n} test "
                          "images, or no fused/top-1")
    res["cpu"] = cpu["outputs"]
    if gpu is None:
        res["compared"] = False
        res["ok"] = res["cpu_fused_top1_consistent"]
        return res
    res["compared"] = True
    res["gpu"] = gpu["outputs"]
    diffs = {}
    for name, value in cpu["outputs"].items():
        if name in gpu["outputs"]:
            diffs[name] = abs(value - gpu["outputs"][name])
    res["abs_diff"] = diffs
    res["max_abs_diff"] = max(diffs.values()) if diffs else None
    res["outputs_agree"] = bool(diffs) and set(diffs) == set(cpu["outputs"]) and \
        all(d <= TOLERANCE for d in diffs.values())
    res["fused_top1_identical"] = bool(pred) and pred == gpu["fused_top1"]
    res["fused_top1_differing_images"] = sum(a != b for a, b in zip(pred, gpu["fused_top1"]))
    res["ok"] = res["cpu_fused_top1_consistent"] and res["outputs_agree"] and \
        res["fused_top1_identical"]
    return res


def fmt(v, spec=",.1f"):
    return "-" if v is None else format(v, spec)


def resume(text: str, step: dict | None) -> dict:
    """Step 4b: the training resumed from its half-way snapshot, final model compared."""
    facts = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ok = step is not None and step.get("status") == "0" and facts.get("result") == "identical"
    status = (facts.get("result") or "not run") if step else "not run (fewer than two snapshots)"
    if step and step.get("status") != "0":
        status = status_text(step)
    return {"ok": ok, "status": status, **facts}


def markdown(r: dict) -> str:
    L = [f"# GPU check ({r['mode']} mode): {'PASSED' if r['ok'] else 'FAILED'}", "",
         f"Bundle `{r['bundle']}`; {r['seconds']} s in all. "
         + ("Made by tools/gpu_check.sh on a machine without a GPU: CPU parts only."
            if r["mode"] == "cpu" else ""), ""]
    if r.get("device"):
        d = r["device"]
        L += [f"Device: {d.get('Name', '?')}, compute capability {d.get('Major revision number', '?')}."
              f"{d.get('Minor revision number', '?')}, {d.get('Number of multiprocessors', '?')} SMs, "
              f"{int(d.get('Total global memory', 0)) / 2**30:.0f} GiB.", ""]
    if r.get("driver"):
        L += [f"Driver: {r['driver']}", ""]
    L += ["## caffe time, training nets (forward + backward)", "",
          f"SGEMM {r['sgemm']['size']}^3 through Caffe (InnerProduct forward): "
          f"{fmt(r['sgemm'].get('gflops'))} GFLOP/s ({r['sgemm']['status']}).", "",
          "| net | batch | ms / iter | GFLOP / iter | GFLOP/s | / SGEMM | "
          f"{r['paper_max_iter']:,} iterations, h | status |",
          "|---|---:|---:|---:|---:|---:|---:|---|"]
    for t in r["timing"]:
        L.append(f"| {t['variant']} | {t['batch']} | {fmt(t.get('ms_per_iter'))} | "
                 f"{fmt(t.get('gflop_per_iter'))} | {fmt(t.get('gflops'))} | "
                 f"{fmt(t.get('of_sgemm'), '.2f')} | {fmt(t.get('paper_schedule_hours'), '.2f')} | "
                 f"{t['status']} |")
    tr = r["training"]
    L += ["", f"## Training DRI on the synthetic kit ({tr['status']})", "",
          f"{tr['last_iteration']} of {tr['max_iter']} iterations"
          + (f", {tr['seconds']} s with setup and validation ({tr['ms_per_iter_with_setup']:.0f} ms per iteration)"
             if "seconds" in tr else "")
          + f"; training loss {fmt(tr['train_loss_first'], '.3f')} -> {fmt(tr['train_loss_last'], '.3f')}.", "",
          "| iteration | loss3/top-1 | fused/top-1 | loss1/top-1 | loss2/top-1 |",
          "|---:|---:|---:|---:|---:|"]
    for t in tr["validation"]:
        L.append(f"| {t['iteration']} | {fmt(t.get('loss3/top-1'), '.4f')} | "
                 f"{fmt(t.get('fused/top-1'), '.4f')} | {fmt(t.get('loss1/top-1'), '.4f')} | "
                 f"{fmt(t.get('loss2/top-1'), '.4f')} |")
    a = r["agreement"]
    L += ["", "## caffe test of the trained weights, CPU against GPU", ""]
    if a.get("problem"):
        L += [f"Problem: {a['problem']}", ""]
    L += ["| output | CPU | GPU | abs diff |", "|---|---:|---:|---:|"]
    for name, v in a.get("cpu", {}).items():
        g = a.get("gpu", {}).get(name)
        L.append(f"| {name} | {v:.6g} | {fmt(g, '.6g')} | {fmt(a.get('abs_diff', {}).get(name), '.2g')} |")
    if a["compared"]:
        L += ["", f"Tolerance {a['tolerance']}: outputs {'agree' if a['outputs_agree'] else 'DIFFER'}; "
              f"fused top-1 {'identical' if a['fused_top1_identical'] else 'DIFFERS'} "
              f"({a['fused_top1_differing_images']} images differ)."]
    else:
        L += ["", "No GPU: CPU only. Fused top-1 from the per-image predictions "
              f"{fmt(a.get('cpu_fused_top1_from_predictions'), '.4f')}, "
              f"{'equal to' if a['cpu_fused_top1_consistent'] else 'NOT equal to'} Caffe's fused/top-1."]
    rs = r["resume"]
    L += ["", "## Exact resume (patch 12)", "",
          f"Training again from `{rs.get('resumed_from', '?')}` to `{rs.get('final', '?')}`: "
          f"final .caffemodel {rs['status']}" + (" to step 3's, byte for byte." if rs["ok"] else ".")]
    g = r["gtest"]
    L += ["", f"## Caffe's GTest cases ({'GPU' if r['mode'] == 'gpu' else 'a CPU sample'})", "",
          f"{g['passed']} passed, {g['failed']} failed ({g['status']}"
          f"{'' if g['complete'] else ', counted up to where it stopped'})."]
    for name in g["failed_cases"]:
        L.append(f"- failed: `{name}`")
    if r["problems"]:
        L += ["", "## Problems", ""] + [f"- {p}" for p in r["problems"]]
    return "\n".join(L) + "\n"


MODE = "gpu"


def main(argv=None) -> int:
    global MODE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="gpu_check.sh's work folder")
    ap.add_argument("--kit", type=Path, required=True)
    ap.add_argument("--mode", choices=("gpu", "cpu"), required=True)
    ap.add_argument("--bundle", default="")
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    MODE = args.mode
    kit = json.loads((args.kit / "kit.json").read_text())
    all_steps = steps(args.work)
    logs = args.work / "logs"
    r: dict = {"mode": args.mode, "bundle": args.bundle, "seconds": args.seconds,
               "paper_max_iter": kit["paper_max_iter"],
               "steps": all_steps,
               "caffe_version": read(logs / "version.log").strip().splitlines()[-1:]}
    if args.mode == "gpu":
        r["device"] = device(read(logs / "device_query.log"))
        m = re.search(r"Driver Version:\s*(\S+)\s+CUDA Version:\s*(\S+)", read(logs / "nvidia-smi.log"))
        r["driver"] = f"{m.group(1)} (CUDA {m.group(2)})" if m else None
    r["timing"], r["sgemm"] = timing(kit, args.work, all_steps)
    r["training"] = training(read(logs / "train.log"), all_steps.get("train"), kit)
    cpu = caffe_test(read(logs / "test_cpu.log"))
    gpu = caffe_test(read(logs / "test_gpu.log")) if args.mode == "gpu" else None
    r["agreement"] = agreement(cpu, gpu, kit["test_labels"])
    r["gtest"] = gtest(read(logs / "gtest.log"), all_steps.get("gtest"))
    r["resume"] = resume(read(logs / "resume.txt"), all_steps.get("resume"))

    problems = []
    if all_steps.get("version", {}).get("status") != "0":
        problems.append("caffe --version failed: the bundle does not run here (logs/version.log)")
    if args.mode == "gpu" and not r["device"].get("Name"):
        problems.append("caffe device_query named no device (logs/device_query.log)")
    for t in r["timing"]:
        if "ms_per_iter" not in t:
            problems.append(f"caffe time of {t['variant']}: {t['status']} ({t['log']})")
    if "gflops" not in r["sgemm"]:
        problems.append(f"SGEMM timing: {r['sgemm']['status']} (logs/sgemm.log)")
    if not r["training"]["ok"]:
        problems.append(f"training: {r['training']['status']}, reached iteration "
                        f"{r['training']['last_iteration']} of {r['training']['max_iter']} (logs/train.log)")
    if not r["agreement"]["ok"]:
        problems.append("caffe test: " + (r["agreement"].get("problem")
                        or "CPU and GPU results differ beyond the tolerance (see the table)"))
    if not r["gtest"]["ok"]:
        problems.append(f"GTest: {r['gtest']['passed']} passed, {r['gtest']['failed']} failed, "
                        f"{r['gtest']['status']} (logs/gtest.log)")
    if not r["resume"]["ok"]:
        problems.append(f"exact resume: {r['resume']['status']} (logs/resume.log)")
    r["problems"] = problems
    r["ok"] = not problems

    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("gpu_check.json", json.dumps(r, indent=1) + "\n"),
                       ("gpu_check.md", markdown(r))):
        tmp = args.out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, args.out / name)
    print(markdown(r))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
