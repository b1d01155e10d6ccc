"""A seed series folder (`make seeds`): N runs of one configuration that differ only in
Caffe's random_seed (optionally also in the split's seed), in `<RUN_DIR>-seeds/seed-K/`, and a
summary of how much the figures move: mean, standard deviation and range per fusion
(`summary.json`, `README.md`). dri_hep2.experiment.experiments trains them.

seed-K trains with random_seed = ledger.RANDOM_SEED + K - 1, so seed-1 is the configuration
of a plain `make train`.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import atomic, ledger, paper
from . import stats
from ..errors import UserError
from ..folders import Folder, member
from .metrics import COMBOS
from .run import RunDir


class SeriesDir(Folder):
    summary = member("summary.json")
    page = member("README.md")

    def run(self, k: int) -> RunDir:
        return RunDir(self.path / f"seed-{k}")

    def runs(self) -> list[tuple[int, RunDir]]:
        found = [(int(p.name.split("-", 1)[1]), RunDir(p)) for p in self.path.glob("seed-*")
                 if p.name.split("-", 1)[1].isdigit()]
        return sorted(found, key=lambda kr: kr[0])


def series_of(run_dir: str | Path) -> SeriesDir:
    """The seed series that belongs to a run folder: `<run>-seeds`."""
    return SeriesDir(f"{Path(run_dir)}-seeds")


def seed_of(k: int) -> int:
    return ledger.RANDOM_SEED + k - 1


def summarize(series: SeriesDir) -> dict:
    """The figures of every evaluated run of the series and their spread per fusion."""
    runs = []
    for k, run in series.runs():
        if run.eval_json.is_file():
            result = json.loads(run.eval_json.read_text())
            runs.append({"k": k, "seed": run.read_manifest().get("seed"), "run": run.name,
                         "iteration": result["iteration"],
                         "prob": {c: {"mca": s["mca"], "aca": s["aca"]}
                                  for c, s in result["combos"].items()},
                         "score": {c: {"mca": s["mca"], "aca": s["aca"]}
                                   for c, s in result.get("score_combos", {}).items()}})
    if not runs:
        raise UserError(f"no evaluated run in {series.path}: run 'make seeds' first")
    spread = {rule: {c: {m: stats.spread([r[rule][c][m] for r in runs]) for m in ("mca", "aca")}
                     for c in COMBOS if all(c in r[rule] for r in runs)}
              for rule in ("prob", "score")}
    return {"runs": runs, "spread": spread}


def write_summary(series: SeriesDir, net: str, schedule: str, data_dir: Path,
                  vary_split: bool) -> Path:
    summary = {"net": net, "schedule": schedule, "data_dir": str(data_dir),
               "vary_split": vary_split, **summarize(series),
               "paper_table3b_mca": paper.TABLE3B_MCA}
    atomic.write_text(series.summary, json.dumps(summary, indent=2) + "\n")
    return atomic.write_text(series.page, series_page(summary, series))


def spread_cell(s: dict) -> str:
    """`95.1 ± 1.2 (93.6-96.5)` in %, from stats.spread."""
    return (f"{100 * s['mean']:.2f} ± {100 * s['sd']:.2f} "
            f"({100 * s['min']:.2f}-{100 * s['max']:.2f})")


def spread_table(summary: dict) -> list[str]:
    """Table 3(b) as mean ± sd (range) over the seeds, beside the paper's single figures."""
    n = len(summary["runs"])
    lines = [f"| branches | MCA over {n} seeds | ACA over {n} seeds | MCA (paper, one run) |",
             "|---|---|---|---|"]
    for combo, s in summary["spread"]["prob"].items():
        lines.append(f"| DRI<sub>{combo}</sub> | {spread_cell(s['mca'])} | "
                     f"{spread_cell(s['aca'])} | "
                     f"{paper.TABLE3B_MCA.get(combo, float('nan')):.2f} |")
    return lines


def series_page(summary: dict, series: SeriesDir) -> str:
    runs = summary["runs"]
    lines = [f"# {paper.variant_title(summary['net'])}: {len(runs)} seeds, schedule "
             f"`{summary['schedule']}`", "",
             "The runs differ only in Caffe's `random_seed` (weight fillers, dropout)"
             + (" and in the seed of the split and of the training order"
                if summary["vary_split"] else ", on one split") + f" of `{summary['data_dir']}`. "
             "Mean ± sample standard deviation (minimum-maximum), in %; the sum of softmax "
             "probabilities (ledger N13).", ""]
    lines += spread_table(summary)
    lines += ["", "| run | random_seed | iteration | "
              + " | ".join(f"DRI<sub>{c}</sub> MCA" for c in summary["spread"]["prob"]) + " |",
              "|---|---|---|" + "---|" * len(summary["spread"]["prob"])]
    for r in runs:
        lines.append(f"| [{r['run']}]({r['run']}/README.md) | {r['seed']} | {r['iteration']} | "
                     + " | ".join(f"{100 * r['prob'][c]['mca']:.2f}"
                                  for c in summary["spread"]["prob"]) + " |")
    if summary["spread"]["score"]:
        lines += ["", "The other reading of the sum layer (raw scores summed), MCA: " + ", ".join(
            f"DRI<sub>{c}</sub> {spread_cell(s['mca'])}"
            for c, s in summary["spread"]["score"].items()) + "."]
    return "\n".join(lines) + "\n"
