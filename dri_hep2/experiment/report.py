"""Reports of a run beside the paper's numbers: eval.md, confusion.png, curves.png, README.md,
and the Table 3(a) ablation page. Figures use matplotlib's Agg backend (no display needed)."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from .. import atomic, ledger, paper  # noqa: E402
from ..engine import caffe_env, caffe_log  # noqa: E402
from . import series, stats  # noqa: E402
from .metrics import COMBOS, FULL_COMBO  # noqa: E402
from .run import RunDir  # noqa: E402

ABLATION_PAGE = "ablation.md"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _paper(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _save(fig, path: Path) -> Path:
    with atomic.staged_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_curves(log: caffe_log.TrainingLog, path: str | Path) -> Path:
    """Losses (train solid, validation dashed), validation accuracies and lr per iteration."""
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(3, 1, figsize=(8, 10), sharex=True)
    for name in log.names("train"):
        ax_loss.plot(*log.series(f"train/{name}"), label=f"train {name}")
    for name in log.names("test"):
        its, values = log.series(f"test/{name}")
        target = ax_acc if name.endswith(("top-1", "accuracy")) else ax_loss
        target.plot(its, values, "--" if target is ax_loss else "-o", markersize=3,
                    label=f"val {name}")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_acc.set_ylabel("validation accuracy")
    its, lrs = log.series(caffe_log.LR)
    ax_lr.plot(its, lrs)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("iteration")
    if lrs and min(lrs) > 0:
        ax_lr.set_yscale("log")
    for ax in (ax_loss, ax_acc):
        if ax.lines:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax_lr.grid(alpha=0.3)
    return _save(fig, Path(path))


def plot_confusion(confusion: np.ndarray, path: str | Path, title: str = "",
                   abbrev=paper.CLASS_ABBREV) -> Path:
    """Row-normalised confusion matrix with the counts written in each cell; `abbrev`: the
    class list's abbreviations (the paper's six by default)."""
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1, keepdims=True)
    rates = confusion / np.maximum(support, 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ticks = range(len(abbrev))
    ax.set_xticks(ticks, abbrev)
    ax.set_yticks(ticks, abbrev)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title)
    return _save(fig, Path(path))


def _ci(interval) -> str:
    """A 95 % interval in %, as ` [lo, hi]`; nothing where the evaluation has none."""
    return "" if not interval else f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def _rate(figures: Mapping, key: str, bold: bool = False) -> str:
    """A rate in % with its interval (`mca` with `mca_ci`)."""
    value = _pct(figures[key])
    return (f"**{value}**" if bold else value) + _ci(figures.get(f"{key}_ci"))


def headline(result: Mapping) -> str:
    """`MCA 95.26 % [92.1, 97.4], ACA 97.44 % [94.8, 98.8]`: what the tools print."""
    return (f"MCA {_pct(result['mca'])} %{_ci(result.get('mca_ci'))}, "
            f"ACA {_pct(result['aca'])} %{_ci(result.get('aca_ci'))}")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _paired(test: Mapping | None) -> str:
    """McNemar's counts and p: `3 / 1, p = 0.625` (this right only / the other right only)."""
    return "-" if not test else f"{test['a_only']} / {test['b_only']}, p = {_p(test['p'])}"


def _combo_rows(combos: Mapping, tests: Mapping, with_paper: bool) -> list[str]:
    rows = []
    for combo in COMBOS:
        if combo in combos:
            ours = combos[combo]
            paper_cell = f" {_paper(paper.TABLE3B_MCA.get(combo))} |" if with_paper else ""
            rows.append(f"| DRI<sub>{combo}</sub> | {_rate(ours, 'mca')} | {_rate(ours, 'aca')} "
                        f"|{paper_cell} {_paired(tests.get(combo))} |")
    return rows


def eval_markdown(result: Mapping) -> str:
    """eval.md: Table 3(b) under both readings of the sum layer and Table 4 beside the paper,
    with 95 % intervals and paired tests where the evaluation has them; per-class rates and
    the confusion matrix."""
    full = result.get("combo", FULL_COMBO)
    mcnemar = result.get("mcnemar", {})
    intervals = result.get("intervals")
    names, abbrev = class_names(result)
    lines = [f"# Evaluation: {paper.variant_title(result.get('net'))}",
             "",
             f"Weights `{result.get('weights')}`, {result['n']} cells of the "
             f"`{result.get('split', 'test')}` split. Rates in %"
             + (f", with 95 % intervals in brackets (ACA and classes: {intervals['aca']}; MCA: "
                f"{intervals['mca']}, {intervals['resamples']} resamples)" if intervals else "")
             + ".",
             "", "## Classifier branches fused (Table 3(b))", "",
             "Our reading of the paper's sum layer (section 2.1): the branches' softmax "
             "probabilities are summed (ledger N13). The last column compares each row with "
             f"DRI<sub>{full}</sub> on the same cells: cells only this row gets right / cells "
             "only the full fusion gets right, and McNemar's exact p.", "",
             "| branches | MCA (ours) | ACA (ours) | MCA (paper) | vs DRI<sub>" + full
             + "</sub> |", "|---|---|---|---|---|"]
    lines += _combo_rows(result["combos"], mcnemar.get("prob", {}), with_paper=True)
    if result.get("score_combos"):
        lines += ["", "The other reading: the raw classifier scores summed. The last column "
                  "compares each row with the same branches summed as probabilities.", "",
                  "| branches | MCA | ACA | vs probabilities |", "|---|---|---|---|"]
        lines += _combo_rows(result["score_combos"], mcnemar.get("prob_vs_score", {}),
                             with_paper=False)
    if result.get("branches"):
        lines += ["", "Each branch alone: " + ", ".join(
            f"FC{b} MCA {_rate(s, 'mca')} / ACA {_rate(s, 'aca')}"
            for b, s in sorted(result["branches"].items())) + "."]
    lines += ["", "## Beside Table 4", "", "| method | MCA | ACA |", "|---|---|---|"]
    for method, (m, a) in paper.TABLE4.items():
        lines.append(f"| {method} (paper) | {_paper(m)} | {_paper(a)} |")
    lines.append(f"| **{paper.variant_title(result.get('net'))} (this run)** | {_rate(result, 'mca', True)} | "
                 f"{_rate(result, 'aca', True)} |")
    per_class_ci = result.get("per_class_ci")
    lines += ["", f"## Per class (DRI<sub>{full}</sub>)", "",
              "| class | " + " | ".join(abbrev) + " |",
              "|---|" + "---|" * len(names),
              "| rate | " + " | ".join(_pct(result["per_class"][c]) for c in names)
              + " |"]
    if per_class_ci:
        lines.append("| 95 % interval | " + " | ".join(_ci(per_class_ci[c]).strip()
                                                      for c in names) + " |")
    lines += ["", "Confusion (rows true, columns predicted):", "",
              "| | " + " | ".join(abbrev) + " |",
              "|---|" + "---|" * len(names)]
    for short, row in zip(abbrev, result["confusion"]):
        lines.append(f"| **{short}** | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def class_names(result: Mapping) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, abbreviations) of the classes an eval.json reports; the paper's six for one
    written before other class lists were possible."""
    names = tuple(result.get("classes") or paper.CLASSES)
    abbrev = tuple(result.get("abbrev") or
                   (paper.CLASS_ABBREV if names == paper.CLASSES else names))
    return names, abbrev


def _link(target: Path, page_dir: Path) -> str:
    return os.path.relpath(target.resolve(), page_dir.resolve())


def run_page(run: RunDir) -> str:
    """The run's README.md in model-zoo style: what ran, results, plots, paper differences."""
    manifest = run.require(RunDir.manifest).read_manifest()
    sessions = manifest.get("sessions", [])
    net = manifest.get("net", run.name)
    lines = [f"# {paper.variant_title(net)} on HEp-2 cells: run `{run.name}`", "",
             f"Reproduction of {paper.CITATION}", "", "## What was run", "",
             f"- net `{net}`, schedule `{manifest.get('schedule')}`, "
             f"device {'GPU ' + manifest['gpu'] if manifest.get('gpu') else 'CPU'}",
             f"- data `{manifest.get('data_dir')}` (manifest sha256 "
             f"`{(manifest['sha256'].get('data manifest.json') or '-')[:12]}`)",
             f"- code {manifest['git'].get('commit') or 'unknown'}"
             f"{' (with uncommitted changes)' if manifest['git'].get('dirty') else ''}, "
             f"Caffe {manifest['caffe'].get('version')} ({manifest['caffe'].get('mode')}, "
             f"build {manifest['caffe'].get('build_id')})",
             f"- files: [solver]({RunDir.solver}), [train_val]({RunDir.train_val}), "
             f"[deploy]({RunDir.deploy}), [log]({RunDir.log}) ([csv]({RunDir.log_csv})), "
             f"[manifest]({RunDir.manifest})", ""]
    if sessions:
        lines += ["| session | started | resumed from | outcome | last iteration |",
                  "|---|---|---|---|---|"]
        for i, s in enumerate(sessions, 1):
            lines.append(f"| {i} | {s.get('started')} | {s.get('resumed_from') or '-'} | "
                         f"{s.get('outcome')} | {s.get('last_iteration')} |")
        lines += ["", "Command: `" + " ".join(sessions[-1].get("command", [])) + "` "
                  f"(in `{run.path}`)", ""]
    if run.log_csv.is_file():
        log = caffe_log.parse_file(run.log)
        _, spi = log.series(caffe_log.SEC_PER_ITER)
        if spi:
            lines += [f"Training speed: median {1000 * float(np.median(spi)):.0f} ms per "
                      f"iteration over {len(spi)} display intervals (validation passes "
                      f"included).", ""]
    if run.eval_md.is_file():
        body = run.eval_md.read_text().split("\n", 1)[1]
        lines += ["## Results", body.replace("\n## ", "\n### "),
                  f"![confusion]({RunDir.confusion})", ""]
    else:
        lines += ["## Results", "", "Not evaluated yet: run `make eval`.", ""]
    seeds = series.series_of(run.path)
    if seeds.summary.is_file():
        summary = json.loads(seeds.summary.read_text())
        lines += ["## Seeds", "", f"The same configuration with {len(summary['runs'])} Caffe "
                  f"random seeds ([series]({_link(seeds.page, run.path)})): how far this run's "
                  "figures move with the seed alone.", "", *series.spread_table(summary), ""]
    lines += explain_links(run)
    lines += ["## Training curves", "", f"![curves]({RunDir.curves})", "",
              "## Differences from the paper", "",
              "- Data: the paper's numbers are on I3A (13,596 cells); on the synthetic "
              "replica the numbers measure the toolkit, not the paper's claim.",
              ("- Schedule: `short`, a CPU schedule of a few hundred iterations against the "
               "paper's 290,000, with a short BatchNorm averaging window (ledger T1, T7)."
               if manifest.get("schedule") == "short" else
               "- Schedule: section 2.3's, with the stepsize, weight decay and validation the "
               "paper leaves open (ledger N7, N8, N14)."),
              "- Every choice the paper leaves open (Fig. 1 and Fig. 2 are lost, solver "
              f"details unstated) is a row of the [assumptions ledger]"
              f"({_link(ledger.PAGE, run.path)}).", ""]
    return "\n".join(lines)


def explain_links(run: RunDir) -> list[str]:
    """The run page's links to `make explain`'s montages, only where they exist."""
    if not run.explain_summary.is_file():
        return []
    explained = json.loads(run.explain_summary.read_text())
    links = [f"[{name}]({RunDir.explain}/{c['montage']})"
             for name, c in explained.get("classes", {}).items()
             if (run.explain / c["montage"]).is_file()]
    return ["## What the net looks at", "",
            f"Gradient of the fused prediction and Grad-CAM at `{explained.get('layer')}` for "
            "correctly and wrongly called test cells (`make explain`, docs/using.md): "
            + ", ".join(links) + ".", ""] if links else []


def write_log_outputs(run: RunDir) -> None:
    """log.csv and curves.png of the run's train.log (after every training session)."""
    if run.log.is_file():
        log = caffe_log.parse_file(run.log)
        caffe_log.write_csv(log, run.log_csv)
        if log.rows:
            plot_curves(log, run.curves)


def write_report(run_dir: str | Path | RunDir) -> Path:
    """eval.md, confusion.png (if evaluated), log.csv, curves.png and README.md of one run."""
    run = RunDir(run_dir)
    if run.eval_json.is_file():
        result = json.loads(run.eval_json.read_text())
        atomic.write_text(run.eval_md, eval_markdown(result))
        plot_confusion(np.array(result["confusion"]), run.confusion,
                       f"DRI{result.get('combo', FULL_COMBO)}: MCA {_pct(result['mca'])} %",
                       class_names(result)[1])
    write_log_outputs(run)
    return atomic.write_text(run.page, run_page(run))


def ablation_page(evals: Mapping[str, Mapping], page_dir: Path,
                  run_dirs: Mapping[str, Path] | None = None, schedule: str = "") -> str:
    """Table 3(a): MCA of the four variants (ours from each eval.json, with intervals) beside
    the paper's; McNemar's test of each against DRI on the same test cells; the spread over
    seeds where a variant's run belongs to a seed series."""
    lines = ["# Table 3(a): the DRI module and depth", "",
             f"Each variant trained with schedule `{schedule}` and evaluated on the test split "
             "with the sum of its classifier branches. Rates in %, 95 % intervals in brackets. "
             "The last columns: cells only this variant / only DRI gets right with McNemar's "
             "exact p, and mean ± sd (range) of MCA over a seed series where there is one.", "",
             "| variant | MCA (ours) | ACA (ours) | MCA (paper) | run | vs DRI | over seeds |",
             "|---|---|---|---|---|---|---|"]
    for variant, row in paper.VARIANTS.items():
        result = evals.get(variant)
        run = (f"[{variant}]({_link(RunDir(run_dirs[variant]).page, page_dir)})"
               if run_dirs and variant in run_dirs else "-")
        ours = (f"{_rate(result, 'mca')} | {_rate(result, 'aca')}" if result
                else "not run | -")
        lines.append(f"| {row.title} | {ours} | {row.table3a_mca:.2f} | {run} | "
                     f"{_against_dri(variant, evals)} | "
                     f"{_seed_spread(run_dirs.get(variant)) if run_dirs else '-'} |")
    lines += ["", "The paper's ordering: Shallow Inception < SRI < Inception < DRI. "
              f"Differences from the paper: [assumptions ledger]"
              f"({_link(ledger.PAGE, page_dir)}).", ""]
    return "\n".join(lines)


def _against_dri(variant: str, evals: Mapping[str, Mapping]) -> str:
    """McNemar's test of a variant's fused predictions against DRI's on the same cells."""
    if variant == "dri" or variant not in evals or "dri" not in evals:
        return "-"
    a, b = evals[variant].get("cells"), evals["dri"].get("cells")
    if not a or not b or a["ids"] != b["ids"]:
        return "-"
    labels = np.asarray(a["labels"])
    combo = FULL_COMBO
    test = stats.mcnemar(np.asarray(a["predicted"]["prob"][combo]) == labels,
                         np.asarray(b["predicted"]["prob"][combo]) == labels)
    return _paired(test)


def _seed_spread(run_dir: Path | None) -> str:
    """MCA over the seed series this run is seed-1 of (`<x>-seeds/seed-1`), if summarised."""
    if run_dir is None or Path(run_dir).name != "seed-1":
        return "-"
    summary = series.SeriesDir(Path(run_dir).parent).summary
    if not summary.is_file():
        return "-"
    s = json.loads(summary.read_text())["spread"]["prob"].get(FULL_COMBO)
    return series.spread_cell(s["mca"]) if s else "-"


def write_ablation(run_dirs: Mapping[str, Path], path: str | Path, schedule: str = "") -> Path:
    path = Path(path)
    evals = {v: json.loads(RunDir(d).eval_json.read_text()) for v, d in run_dirs.items()
             if RunDir(d).eval_json.is_file()}
    return atomic.write_text(path, ablation_page(evals, path.parent, run_dirs, schedule))
