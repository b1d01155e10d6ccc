"""Reports from hand-made eval.json / logs: eval.md, the Table 3(a) page, figures, run page."""
from __future__ import annotations

import json
import numpy as np

from dri_hep2.engine import caffe_log
from dri_hep2 import ledger, paper
from dri_hep2.experiment import report

CONFUSION = np.diag([50, 60, 55, 57, 45, 15]).tolist()
CONFUSION[5][4] = 5   # five Golgi cells called NuMem


def eval_result(mca: float, aca: float) -> dict:
    return {"net": "dri", "weights": "snapshots/dri_iter_900.caffemodel", "n": 287,
            "split": "test", "combo": "1+2+3", "mca": mca, "aca": aca,
            "per_class": dict(zip(paper.CLASSES, [1, 1, 1, 1, 1, 0.75])),
            "confusion": CONFUSION,
            "combos": {"3": {"mca": 0.9, "aca": 0.91}, "1+3": {"mca": 0.93, "aca": 0.94},
                       "2+3": {"mca": 0.9, "aca": 0.91}, "1+2+3": {"mca": mca, "aca": aca}},
            "branches": {"1": {"mca": 0.8, "aca": 0.81}}}


def test_eval_md_puts_ours_beside_tables_3b_and_4():
    text = report.eval_markdown(eval_result(0.9583, 0.9826))
    assert "| DRI<sub>1+3</sub> | 93.00 | 94.00 | 97.41 |" in text
    assert "| DRI<sub>1+2+3</sub> | 95.83 | 98.26 | 98.37 |" in text
    assert "| Gao et al. [11] (paper) | 96.76 | 97.24 |" in text
    assert "| **DRI (this run)** | **95.83** | **98.26** |" in text
    assert "| rate | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 | 75.00 |" in text
    assert "| **G** | 0 | 0 | 0 | 0 | 5 | 15 |" in text


def test_eval_md_shows_intervals_paired_tests_and_the_other_reading():
    result = eval_result(0.9583, 0.9826)
    result.update(mca_ci=[0.931, 0.975], aca_ci=[0.962, 0.992],
                  per_class_ci={c: [0.9, 1.0] for c in paper.CLASSES},
                  intervals={"aca": "Wilson score", "mca": "stratified bootstrap percentile, "
                             "resampling specimens within each class", "resamples": 2000})
    result["combos"]["3"].update(mca_ci=[0.85, 0.94])
    result["score_combos"] = {"1+2+3": {"mca": 0.95, "aca": 0.97}}
    result["mcnemar"] = {"prob": {"3": {"a_only": 1, "b_only": 9, "p": 22 / 1024}},
                         "prob_vs_score": {"1+2+3": {"a_only": 0, "b_only": 2, "p": 0.5}}}
    text = report.eval_markdown(result)
    assert "95 % intervals in brackets" in text and "resampling specimens" in text
    assert "| DRI<sub>3</sub> | 90.00 [85.0, 94.0] | 91.00 | 96.23 | 1 / 9, p = 0.021 |" in text
    assert "| DRI<sub>1+2+3</sub> | 95.00 | 97.00 | 0 / 2, p = 0.500 |" in text
    assert "| **DRI (this run)** | **95.83** [93.1, 97.5] | **98.26** [96.2, 99.2] |" in text
    assert "| 95 % interval | [90.0, 100.0] |" in text


def test_ablation_page_is_table_3a(tmp_path):
    results = tmp_path / "results"
    values = {"shallow_inception": (0.91, 0.92), "sri": (0.93, 0.94), "dri": (0.97, 0.975)}
    for variant, (mca, aca) in values.items():
        (results / variant).mkdir(parents=True)
        (results / variant / "eval.json").write_text(json.dumps(eval_result(mca, aca)))
    page = report.write_ablation({v: results / v for v in paper.VARIANTS},
                                 results / "ablation.md", "short")
    text = page.read_text()
    assert "| Shallow Inception | 91.00 | 92.00 | 96.54 | [shallow_inception]" \
           "(shallow_inception/README.md) |" in text
    assert "| DRI | 97.00 | 97.50 | 98.37 | [dri](dri/README.md) |" in text
    assert "| Inception [16] | not run | - | 97.93 |" in text
    link = text.split("[assumptions ledger](")[1].split(")")[0]
    assert (results / link).resolve() == ledger.PAGE.resolve()


def test_ablation_page_tests_each_variant_against_dri_and_shows_seed_spread(tmp_path):
    """Table 3(a) with intervals, McNemar's test against DRI on the same cells (counted by
    hand below) and the spread of a seed series."""
    results = tmp_path / "results"
    labels = [0, 1, 2, 3, 4, 5] * 2
    dri_pred = labels[:]                         # all 12 right
    sri_pred = labels[:6] + [1, 1, 1, 1, 1, 1]   # 6 wrong, one of them (label 1) right anyway
    for variant, pred in (("dri", dri_pred), ("sri", sri_pred)):
        run = results / f"{variant}-seeds" / "seed-1"
        run.mkdir(parents=True)
        result = eval_result(0.9, 0.9)
        result.update(mca_ci=[0.85, 0.95], aca_ci=[0.8, 0.97], cells={
            "ids": [f"{i:05d}" for i in range(12)], "labels": labels,
            "predicted": {"prob": {"1+2+3": pred}}})
        (run / "eval.json").write_text(json.dumps(result))
    summary = {"runs": [], "spread": {"prob": {"1+2+3": {"mca": {
        "n": 3, "mean": 0.95, "sd": 0.01, "min": 0.94, "max": 0.96}}}}}
    (results / "sri-seeds" / "summary.json").write_text(json.dumps(summary))
    run_dirs = {v: results / f"{v}-seeds" / "seed-1" for v in ("sri", "dri")}
    text = report.write_ablation(run_dirs, results / "ablation.md", "short").read_text()
    # SRI right only where DRI is too: 0 / 5 cells, p = 2 / 2^5.
    assert "| SRI | 90.00 [85.0, 95.0] | 90.00 [80.0, 97.0] | 97.85 | " \
           "[sri](sri-seeds/seed-1/README.md) | 0 / 5, p = 0.062 | " \
           "95.00 ± 1.00 (94.00-96.00) |" in text
    assert "| DRI | 90.00 [85.0, 95.0] | 90.00 [80.0, 97.0] | 98.37 | " \
           "[dri](dri-seeds/seed-1/README.md) | - | - |" in text


def test_figures_are_written(tmp_path):
    log = caffe_log.parse_lines([
        "I1 solver.cpp:239] Iteration 0 (1 iter/s, 1s/1 iters), loss = 2",
        "I1 solver.cpp:258]     Train net output #0: loss1/loss = 2 (* 0.3 = 0.6 loss)",
        "I1 sgd_solver.cpp:112] Iteration 0, lr = 0.01",
        "I1 solver.cpp:347] Iteration 10, Testing net (#0)",
        "I1 solver.cpp:414]     Test net output #0: fused/top-1 = 0.5",
        "I1 solver.cpp:239] Iteration 10 (1 iter/s, 1s/1 iters), loss = 1",
        "I1 solver.cpp:258]     Train net output #0: loss1/loss = 1 (* 0.3 = 0.3 loss)",
        "I1 sgd_solver.cpp:112] Iteration 10, lr = 0.005"])
    curves = report.plot_curves(log, tmp_path / "curves.png")
    confusion = report.plot_confusion(np.array(CONFUSION), tmp_path / "confusion.png")
    for png in (curves, confusion):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not list(tmp_path.glob(".*"))      # no temporary left behind


def test_run_page_says_what_ran_and_links_the_ledger(tmp_path):
    run_dir = tmp_path / "results" / "demo"
    run_dir.mkdir(parents=True)
    (run_dir / "eval.json").write_text(json.dumps(eval_result(0.9583, 0.9826)))
    (run_dir / "run_manifest.json").write_text(json.dumps({
        "net": "dri", "schedule": "short", "gpu": "", "data_dir": "/data/demo",
        "git": {"commit": "abc123", "dirty": False},
        "caffe": {"version": "1.0.0", "mode": "CPU", "build_id": "498d"},
        "sha256": {"data manifest.json": "f" * 64},
        "sessions": [{"started": "t0", "resumed_from": None, "outcome": "interrupted",
                      "last_iteration": 300, "command": ["caffe", "train"]},
                     {"started": "t1", "resumed_from": "snapshots/dri_iter_300.solverstate",
                      "outcome": "finished", "last_iteration": 900,
                      "command": ["caffe", "train", "-snapshot=x"]}]}))
    text = report.write_report(run_dir).read_text()
    assert "net `dri`, schedule `short`, device CPU" in text
    assert "short BatchNorm averaging window (ledger T1, T7)" in text
    assert "| 2 | t1 | snapshots/dri_iter_300.solverstate | finished | 900 |" in text
    assert "| DRI<sub>1+2+3</sub> | 95.83 | 98.26 | 98.37 |" in text
    assert "![confusion](confusion.png)" in text and (run_dir / "confusion.png").is_file()
    link = text.split("[assumptions ledger](")[1].split(")")[0]
    assert (run_dir / link).resolve() == ledger.PAGE.resolve()
