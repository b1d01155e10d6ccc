"""Cross-validation (`make cv`): every fold of a k-fold or leave-one-specimen-out protocol
built as its own data folder, trained, evaluated and reported as `make data`, `make train` and
`make eval` would, then one summary page: per-fold and pooled MCA / ACA with 95 % intervals,
the pooled confusion matrix, beside the paper's cell-level figure.

    <CV_DIR> (default results/<NET>-<PROTOCOL>)
        cv.json                 what the series is (net, schedule, protocol, folds, data, seed)
        fold-1/ ... fold-K/     a run folder each (dri_hep2.experiment.run.RunDir)
        summary.json            per-fold figures, pooled figures, spread over folds
        README.md, confusion.png

    <DATA_ROOT> (default data/cv/<CV_DIR's name>)/fold-1 ... fold-K: each fold's data folder

Pooled = every fold's test predictions together: each cell is tested exactly once, by the
model that did not see it (ledger C9). An interrupted series resumes: each fold's data build is
skipped when up to date, its training resumes from its newest snapshot, a finished fold is not
trained or evaluated again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from .. import atomic, ledger, paper
from . import execute, metrics, report, stats
from ..gpus import Gpus
from ..data import formats, split
from ..data.records import ReaderOptions
from ..errors import UserError
from ..folders import Folder, member
from .metrics import FULL_COMBO
from ..net.options import NetOptions
from .plan import Grid
from .run import RunDir


class CVDir(Folder):
    plan = member("cv.json")
    summary = member("summary.json")
    page = member("README.md")
    confusion = member("confusion.png")

    def fold(self, k: int) -> RunDir:
        return RunDir(self.path / f"fold-{k}")


@dataclass(frozen=True)
class CVConfig:
    """One cross-validation series: make's I3A (the input folder), PROTOCOL, K, NET, SCHEDULE,
    CV_DIR, GPU, and the data build's knobs (`build`: keyword arguments of build_dataset)."""
    source: Path
    protocol: str = "kfold"
    folds: int | None = None            # K; None: ledger.CV_FOLDS, or loso's own count
    net: str = "dri"
    schedule: str = "paper"
    cv_dir: Path | None = None          # default results/<net>-<protocol>
    data_root: Path | None = None       # default data/cv/<cv_dir's name>
    gpus: Gpus = Gpus()
    seed: int = ledger.RANDOM_SEED      # folds, validation parts, key order and Caffe's seed
    net_options: NetOptions = NetOptions()
    build: dict = field(default_factory=dict)
    max_iter: int | None = None         # MAX_ITER= / SNAPSHOT=: the schedule overridden
    snapshot: int | None = None

    def __post_init__(self):
        if self.protocol not in split.FOLD_PROTOCOLS:
            raise UserError(f"make cv runs the fold protocols ({', '.join(split.FOLD_PROTOCOLS)}),"
                            f" not PROTOCOL={self.protocol}: give PROTOCOL=kfold K=5 or "
                            "PROTOCOL=loso")
        cv_dir = Path(self.cv_dir or Path("results") / f"{self.net}-{self.protocol}")
        object.__setattr__(self, "cv_dir", cv_dir)
        object.__setattr__(self, "data_root",
                           Path(self.data_root or Path("data") / "cv" / cv_dir.name))

    @property
    def cv(self) -> CVDir:
        return CVDir(self.cv_dir)


    def grid(self) -> Grid:
        """The series as a plan: one net, one seed (this series' seed), every fold."""
        return Grid(nets=(self.net,), protocol=self.protocol, folds=self.folds,
                    schedule=self.schedule, source=self.source, net_options=self.net_options,
                    max_iter=self.max_iter, snapshot=self.snapshot, gpus=self.gpus,
                    base_seed=self.seed)


def run_cv(cfg: CVConfig, progress: bool = True) -> CVDir | None:
    """Build every fold's data folder, then train, evaluate and report every fold (a plan
    executed here), then the summary; None if a training was interrupted (rerun to resume)."""
    cv = cfg.cv
    options = dict(cfg.build)
    cells = formats.read_cells(cfg.source, options.get("format", "auto"),
                               skip_bad=options.get("skip_bad", False),
                               options=options.get("reader", ReaderOptions()))
    k = split.fold_count(cells.records, cfg.protocol, cfg.folds)
    plan = _plan(cfg, cells, k)
    _check_plan(cv, plan)
    atomic.write_text(cv.plan, json.dumps(plan, indent=2) + "\n")
    grid = cfg.grid()
    fold_data = execute.build_folds(grid, cfg.data_root, progress, options, cells=cells)
    runs = grid.cells(lambda net, seed_k, fold: cv.fold(fold).path, fold_data=fold_data)
    if not execute.run_local(runs, progress, label="cv"):
        return None
    write_summary(cv)
    return cv


def _plan(cfg: CVConfig, cells, k: int) -> dict:
    """What makes one series: a rerun with another of these must not mix with its folds."""
    options = {key: value for key, value in cfg.build.items() if key != "reader"}
    overrides = {k: v for k, v in (("max_iter", cfg.max_iter), ("snapshot", cfg.snapshot))
                 if v is not None}
    reader = cfg.build.get("reader", ReaderOptions()).manifest(cells.format)
    return {"net": cfg.net, "schedule": cfg.schedule, "protocol": cfg.protocol,
            "folds": k, "folds_asked": cfg.folds, "seed": cfg.seed,
            "one_specimen_per_fold": cfg.protocol == "loso"
            and k == len({r.specimen for r in cells.records}),
            "source": str(Path(cfg.source).resolve()), "format": cells.format,
            "classes": cells.classes.manifest(), "reader": reader,
            "build": {key: (list(v) if isinstance(v, tuple) else v)
                      for key, v in options.items() if key != "format"},
            "data_root": str(cfg.data_root.resolve()),
            "net_options": cfg.net_options.changed(),
            # only when given, so that series made before overrides existed still match
            **({"overrides": overrides} if overrides else {})}


def _check_plan(cv: CVDir, plan: dict) -> None:
    if not cv.plan.is_file():
        return
    old = json.loads(cv.plan.read_text())
    changed = sorted(key for key in set(old) | set(plan) if old.get(key) != plan.get(key))
    if changed:
        raise UserError(f"{cv.plan} is a series with other settings ({', '.join(changed)} "
                        f"differ): give another CV_DIR, or delete {cv.path} to start over")


# --- summary --------------------------------------------------------------------------------
def _seconds(sessions: list[dict]) -> float | None:
    """Training time of a run: the sum of its sessions' start-to-end."""
    spans = [datetime.fromisoformat(s["ended"]) - datetime.fromisoformat(s["started"])
             for s in sessions if s.get("ended") and s.get("started")]
    return sum(span.total_seconds() for span in spans) if spans else None


def summarize(cv: CVDir) -> dict:
    """Per-fold figures from each eval.json; pooled figures from all folds' per-cell
    predictions (DRI_{1+2+3}, the sum of softmax probabilities); their spread over folds."""
    if not cv.plan.is_file():
        raise UserError(f"{cv.plan} missing: run 'make cv' first")
    plan = json.loads(cv.plan.read_text())
    folds, labels, predicted, specimens, ids = [], [], [], [], []
    names = abbrev = None
    for k in range(1, plan["folds"] + 1):
        run = cv.fold(k)
        if not run.eval_json.is_file():
            raise UserError(f"{run.eval_json} missing: run the same 'make cv' again to finish "
                            f"fold {k}")
        result = json.loads(run.eval_json.read_text())
        names, abbrev = report.class_names(result)
        cells = result["cells"]
        fold_pred = cells["predicted"]["prob"][result["combo"]]
        folds.append({"k": k, "run": run.name, "n": result["n"], "iteration": result["iteration"],
                      "combo": result["combo"], "mca": result["mca"], "aca": result["aca"],
                      "mca_ci": result.get("mca_ci"), "aca_ci": result.get("aca_ci"),
                      "classes_tested": sorted({int(c) for c in cells["labels"]}),
                      "specimens": sorted(set(cells["specimens"])) if cells["specimens"]
                      else None,
                      "train_seconds": _seconds(run.read_manifest().get("sessions", []))})
        labels += cells["labels"]
        predicted += fold_pred
        ids += cells["ids"]
        specimens += cells["specimens"] or [None] * len(cells["labels"])
    if len(set(ids)) != len(ids):
        raise AssertionError("a cell was tested in two folds: the folds do not partition")
    groups = specimens if all(specimens) else None
    pooled = metrics.prediction_scores(labels, predicted, intervals=True, groups=groups,
                                       classes=names)
    variant = paper.VARIANTS.get(plan["net"])
    table4 = paper.TABLE4.get(variant.title) if variant else None
    return {"plan": plan, "classes": list(names), "abbrev": list(abbrev), "n": len(labels),
            "combo": FULL_COMBO, "folds": folds, "pooled": pooled,
            "bootstrap": "specimens" if groups else "cells",
            "spread": {m: stats.spread([f[m] for f in folds]) for m in ("mca", "aca")},
            "paper": {"net": variant.title if variant else plan["net"],
                      "mca": variant.table3a_mca if variant else None,
                      "aca": table4[1] if table4 else None}}


def write_summary(cv: CVDir) -> Path:
    summary = summarize(cv)
    atomic.write_text(cv.summary, json.dumps(summary, indent=2) + "\n")
    report.plot_confusion(np.array(summary["pooled"]["confusion"]), cv.confusion,
                          f"{summary['paper']['net']}, {_protocol(summary['plan'])}, pooled: "
                          f"MCA {report._pct(summary['pooled']['mca'])} %", summary["abbrev"])
    return atomic.write_text(cv.page, cv_page(summary))


def _protocol(plan: dict) -> str:
    if plan["protocol"] == "kfold":
        return f"stratified {plan['folds']}-fold"
    return ("leave-one-specimen-out" if plan.get("one_specimen_per_fold")
            else f"grouped {plan['folds']}-fold by specimen")


def cv_page(summary: dict) -> str:
    plan, pooled, folds = summary["plan"], summary["pooled"], summary["folds"]
    one_class_folds = all(len(f["classes_tested"]) == 1 for f in folds)
    lines = [f"# {summary['paper']['net']}, {_protocol(plan)} cross-validation "
             f"({plan['protocol']}, K = {plan['folds']})", "",
             f"Data `{plan['source']}` read as {formats.FORMATS.get(plan['format'])}, "
             f"{summary['n']} cells, classes " + ", ".join(
                 f"{a} = {n}" for a, n in zip(summary["abbrev"], summary["classes"]))
             + f". Schedule `{plan['schedule']}`, seed {plan['seed']}. Each fold trained from "
             "scratch on its training part (rotated, ledger C5), validated on its validation "
             "part (C8), evaluated with its final snapshot on its test fold; predictions are "
             f"DRI<sub>{summary['combo']}</sub>, the sum of the branches' softmax probabilities "
             "(N13). Rates in %, 95 % intervals in brackets (ACA and classes: Wilson; MCA: "
             "stratified bootstrap over " + summary["bootstrap"] + ", ledger T8, C9).", "",
             "## Pooled over the folds, beside the paper", "",
             "| | MCA | ACA | test cells |", "|---|---|---|---|",
             f"| **this series, pooled** (each cell tested once) | **{report._rate(pooled, 'mca')}"
             f"** | **{report._rate(pooled, 'aca')}** | {summary['n']} |",
             f"| mean ± sd over the {len(folds)} folds | {_spread(summary['spread']['mca'])} | "
             f"{_spread(summary['spread']['aca'])} | |",
             f"| paper: {summary['paper']['net']}, one random cell-level split of I3A "
             f"(Table 3(a), Table 4) | {report._paper(summary['paper']['mca'])} | "
             f"{report._paper(summary['paper']['aca'])} | 2,719 |", "",
             "The paper's figure is of one cell-level split, which lets cells of one specimen "
             "sit in training and test alike; specimen-level protocols (`loso`) are harder. On a "
             "synthetic replica the figures measure the toolkit, not DRI.", ""]
    if one_class_folds:
        lines += ["Each fold's test part here is one specimen of one class, so a fold's MCA "
                  "is that class's rate: the pooled figures are the series' result.", ""]
    lines += ["## Per fold", "",
              "| fold | test cells | classes tested | specimens | MCA | ACA | iteration | "
              "training | run |", "|---|---|---|---|---|---|---|---|---|"]
    for f in folds:
        seconds = f"{f['train_seconds']:.0f} s" if f["train_seconds"] is not None else "-"
        specimens = (", ".join(f["specimens"]) if f["specimens"] and len(f["specimens"]) <= 3
                     else len(f["specimens"]) if f["specimens"] else "-")
        lines.append(f"| {f['k']} | {f['n']} | {len(f['classes_tested'])} | {specimens} | "
                     f"{report._rate(f, 'mca')} | {report._rate(f, 'aca')} | {f['iteration']} | "
                     f"{seconds} | [{f['run']}]({f['run']}/README.md) |")
    per_ci = pooled.get("per_class_ci", {})
    names, abbrev = summary["classes"], summary["abbrev"]
    lines += ["", "## Pooled per class", "",
              "| class | " + " | ".join(abbrev) + " |", "|---|" + "---|" * len(names),
              "| rate | " + " | ".join(report._pct(pooled["per_class"][c]) for c in names) + " |",
              "| 95 % interval | " + " | ".join(report._ci(per_ci.get(c)).strip() or "-"
                                              for c in names) + " |",
              "", "## Pooled confusion (rows true, columns predicted)", "",
              "| | " + " | ".join(abbrev) + " |", "|---|" + "---|" * len(names)]
    for short, row in zip(abbrev, pooled["confusion"]):
        lines.append(f"| **{short}** | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", f"![pooled confusion]({CVDir.confusion})", "",
              "Choices behind these figures: rows C5-C9 of the assumptions ledger.", ""]
    return "\n".join(lines)


def _spread(s: dict) -> str:
    return f"{100 * s['mean']:.2f} ± {100 * s['sd']:.2f}"
