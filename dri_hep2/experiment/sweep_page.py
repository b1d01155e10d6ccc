"""A sweep's summary (`summary.json`, `README.md` in the sweep folder): per net MCA / ACA mean
± sd over its runs, per seed pooled over folds with 95 % intervals, McNemar's test against
DRI on the same test cells, DRI's branch combinations, every run, beside the paper's Table 3(a)
and Table 3(b). Written by `make sweep` (local) or the gather job (Slurm), from the run
folders alone, so both executors write the same page for the same runs.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import atomic, paper
from . import stats
from .metrics import COMBOS, FULL_COMBO, prediction_scores
from .report import _p, _rate
from .run import RunDir
from .series import spread_cell
from .sweep import SweepDir, load


def _run_row(cell, result: dict | None) -> dict:
    row = {"index": cell.index, "name": cell.name, "net": cell.net, "seed_k": cell.seed_k,
           "seed": cell.config.seed, "fold": cell.fold,
           "run": f"{SweepDir.runs}/{cell.name}"}
    if result is None:
        return {**row, "finished": False}
    return {**row, "finished": True, "iteration": result["iteration"], "n": result["n"],
            "mca": result["mca"], "aca": result["aca"], "mca_ci": result.get("mca_ci"),
            "aca_ci": result.get("aca_ci"),
            "combos": {c: s["mca"] for c, s in result["combos"].items()}}


def _correct(result: dict) -> tuple[list[str], np.ndarray]:
    cells = result["cells"]
    labels = np.asarray(cells["labels"])
    return cells["ids"], np.asarray(cells["predicted"]["prob"][result["combo"]]) == labels


def _against_dri(net: str, results: dict, keys: list) -> dict | None:
    """McNemar over every (seed, fold) both this net and DRI finished, on the same cells."""
    if net == "dri":
        return None
    mine, theirs = [], []
    for key in keys:
        a, b = results.get((net, *key)), results.get(("dri", *key))
        if a is None or b is None:
            continue
        (ids_a, ok_a), (ids_b, ok_b) = _correct(a), _correct(b)
        if ids_a != ids_b:
            continue
        mine.append(ok_a)
        theirs.append(ok_b)
    if not mine:
        return None
    return {"pairs": len(mine), **stats.mcnemar(np.concatenate(mine), np.concatenate(theirs))}


def summarize(sweep: SweepDir) -> dict:
    grid, cells = load(sweep)
    results, rows = {}, []
    for cell in cells:
        run = RunDir(cell.run_dir)
        result = json.loads(run.eval_json.read_text()) if run.eval_json.is_file() else None
        if result is not None:
            results[(cell.net, cell.seed_k, cell.fold)] = result
        rows.append(_run_row(cell, result))
    keys = sorted({(c.seed_k, c.fold) for c in cells}, key=lambda k: (k[0], k[1] or 0))
    nets = {}
    for net in grid.nets:
        done = [r for r in rows if r["net"] == net and r["finished"]]
        entry = {"runs": len([r for r in rows if r["net"] == net]), "finished": len(done),
                 "paper_mca": paper.VARIANTS[net].table3a_mca,
                 "vs_dri": _against_dri(net, results, keys)}
        if done:
            entry["spread"] = {m: stats.spread([r[m] for r in done]) for m in ("mca", "aca")}
            entry["combos"] = {c: stats.spread([r["combos"][c] for r in done])
                               for c in COMBOS if all(c in r["combos"] for r in done)}
        if grid.folded:
            entry["pooled"] = _pooled(net, grid, results)
        nets[net] = entry
    return {"grid": grid.describe(), "runs": rows, "nets": nets,
            "paper_table3b_mca": paper.TABLE3B_MCA}


def _pooled(net: str, grid, results: dict) -> dict:
    """Per seed: every fold's test predictions together (each cell tested once, ledger C9)."""
    out = {}
    for k in range(1, grid.seeds + 1):
        folds = sorted(f for (n, s, f) in results if n == net and s == k)
        if not folds:
            continue
        labels, predicted, names = [], [], None
        for fold in folds:
            result = results[(net, k, fold)]
            labels += result["cells"]["labels"]
            predicted += result["cells"]["predicted"]["prob"][result["combo"]]
            names = result.get("classes") or list(paper.CLASSES)
        scores = prediction_scores(labels, predicted, intervals=True, classes=names)
        out[str(k)] = {"folds": folds, "n": len(labels),
                       **{key: scores[key] for key in ("mca", "aca", "mca_ci", "aca_ci")}}
    return out


def _spread(s: dict | None) -> str:
    return spread_cell(s) if s else "-"


def page(summary: dict) -> str:
    grid, nets, runs = summary["grid"], summary["nets"], summary["runs"]
    folds = f" x {grid['protocol']} folds" if grid["protocol"] in ("kfold", "loso") else ""
    overrides = ", ".join(f"{k.upper()}={grid[k]}" for k in ("max_iter", "snapshot")
                          if grid[k] is not None)
    data = grid["source"] or grid["data_dir"]
    lines = [f"# Sweep: {', '.join(paper.variant_title(n) for n in grid['nets'])} x "
             f"{grid['seeds']} seeds{folds}", "",
             f"Schedule `{grid['schedule']}`" + (f" ({overrides})" if overrides else "")
             + f", data `{data}`, protocol `{grid['protocol']}`. Each run is trained, evaluated "
             "on its test split with the sum of its three branches' softmax probabilities "
             "(DRI<sub>1+2+3</sub>, ledger N13) and reported as `make train`, `make eval` and "
             "`make report` do. Rates in %: mean ± sample sd (range) over the runs; 95 % "
             "intervals in brackets (ACA: Wilson; MCA: stratified bootstrap, ledger T8); seed-K "
             "trains with random_seed base + K - 1 (ledger T10). "
             f"{sum(r['finished'] for r in runs)} of {len(runs)} runs finished.", "",
             "## Per net, beside Table 3(a)", "",
             "| net | runs | MCA | ACA | vs DRI: only this / only DRI right, McNemar p | "
             "MCA (paper, Table 3(a), one run) |", "|---|---|---|---|---|---|"]
    for net, e in nets.items():
        vs = e["vs_dri"]
        against = (f"{vs['a_only']} / {vs['b_only']}, p = {_p(vs['p'])} ({vs['pairs']} paired "
                   "runs)" if vs else "-")
        lines.append(f"| {paper.variant_title(net)} | {e['finished']}/{e['runs']} | "
                     f"{_spread(e.get('spread', {}).get('mca'))} | "
                     f"{_spread(e.get('spread', {}).get('aca'))} | {against} | "
                     f"{e['paper_mca']:.2f} |")
    if any("pooled" in e for e in nets.values()):
        lines += ["", "## Pooled over the folds, per seed", "",
                  "Every fold's test cells together: each cell tested once per seed, by the "
                  "model that did not see it (ledger C9).", "",
                  "| net | seed | folds | test cells | MCA | ACA |", "|---|---|---|---|---|---|"]
        for net, e in nets.items():
            for k, p in e.get("pooled", {}).items():
                lines.append(f"| {paper.variant_title(net)} | {k} | {len(p['folds'])} | "
                             f"{p['n']} | {_rate(p, 'mca')} | {_rate(p, 'aca')} |")
    lines += ["", "## The classifier branches, beside Table 3(b)", "",
              "MCA of each combination of the branches, mean ± sd (range) over the runs.", "",
              "| net | " + " | ".join(f"{{{c}}}" for c in COMBOS) + " |",
              "|---|" + "---|" * len(COMBOS)]
    for net, e in nets.items():
        lines.append(f"| {paper.variant_title(net)} | " + " | ".join(
            _spread(e.get("combos", {}).get(c)) for c in COMBOS) + " |")
    lines.append("| paper (DRI, Table 3(b)) | " + " | ".join(
        f"{summary['paper_table3b_mca'][c]:.2f}" if c in summary["paper_table3b_mca"] else "-"
        for c in COMBOS) + " |")
    lines += ["", "## Every run", "",
              "| run | net | random_seed | fold | iteration | MCA | ACA |",
              "|---|---|---|---|---|---|---|"]
    for r in runs:
        figures = (f"{r['iteration']} | {_rate(r, 'mca')} | {_rate(r, 'aca')}" if r["finished"]
                   else "not finished | - | -")
        lines.append(f"| [{r['name']}]({r['run']}/README.md) | {paper.variant_title(r['net'])} "
                     f"| {r['seed']} | {r['fold'] or '-'} | {figures} |")
    lines += ["", f"Fused predictions: DRI<sub>{FULL_COMBO}</sub>. On a synthetic replica the "
              "figures measure the toolkit, not the nets; Table 3's ordering needs I3A.", ""]
    return "\n".join(lines)


def write(sweep: SweepDir) -> Path:
    summary = summarize(sweep)
    atomic.write_text(sweep.summary, json.dumps(summary, indent=2) + "\n")
    return atomic.write_text(sweep.page, page(summary))

