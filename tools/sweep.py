#!/usr/bin/env python3
"""A grid of runs (`make sweep`, `make sweep-status`): NETS x SEEDS x folds in SWEEP_DIR, on
this host (SCHEDULER=local) or as a Slurm job array (SCHEDULER=slurm). docs/sweeps.md.

  sweep.py run --sweep-dir D [grid options]     prepare, then train here or submit
  sweep.py status --sweep-dir D                 one line per run
  sweep.py task --sweep-dir D [--index I]       one array task (SLURM_ARRAY_TASK_ID)
  sweep.py gather --sweep-dir D                 the summary page (the job after the array)

Run the same `run` again on the same folder to go on: finished runs are not trained again,
an interrupted one resumes from its newest snapshot; a folder of another plan is refused."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from dri_hep2 import cli, paper, schedules
from dri_hep2.data import split
from dri_hep2.errors import UserError
from dri_hep2.experiment import execute, slurm, sweep, sweep_local, sweep_page, sweep_status
from dri_hep2.experiment.plan import Grid
from dri_hep2.net import options

SCHEDULERS = ("local", "slurm")


def _nets(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _grid_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--nets", type=_nets, default=("dri",), metavar="NET,NET",
                    help=f"variants of Table 3(a), comma separated ({', '.join(paper.VARIANTS)})")
    ap.add_argument("--seeds", type=int, default=1, help="seed-1 ... seed-N per net and fold")
    ap.add_argument("--protocol", default="cell", choices=split.PROTOCOLS,
                    help="cell / specimen: DATA_DIR's one split; kfold / loso: folds built "
                         "from --source before any run")
    ap.add_argument("--folds", type=int, help="K of kfold (default 5)")
    ap.add_argument("--schedule", default="paper", choices=schedules.SCHEDULES)
    ap.add_argument("--data-dir", type=Path, default=Path("data"),
                    help="data folder of `make data` (protocols cell, specimen)")
    ap.add_argument("--source", type=Path, help="input folder (I3A=) of kfold / loso")
    ap.add_argument("--scheduler", default="local", choices=SCHEDULERS)
    cli.add_overrides(ap)
    options.add_arguments(ap.add_argument_group("net knobs", "NET_ARGS (ASSUMPTIONS.md N*)"))
    group = ap.add_argument_group(
        "Slurm", "make's SLURM_* variables; a SLURM_CONFIG file of `key = value` lines sets "
        "the same (the variables win)")
    group.add_argument("--slurm-config", type=Path, help="partition, account, time, ... file")
    for name in ("partition", "account", "time", "mem", "cpus-per-task", "max-parallel",
                 "signal-seconds", "gres"):
        group.add_argument(f"--{name}")


def _run(args) -> int:
    grid = Grid(nets=args.nets, seeds=args.seeds, protocol=args.protocol, folds=args.folds,
                schedule=args.schedule, data_dir=args.data_dir, source=args.source,
                net_options=options.from_arguments(args), gpus=args.gpu, **cli.overrides(args))
    folder = sweep.SweepDir(args.sweep_dir.resolve())
    if args.scheduler == "local":
        if not sweep_local.run(grid, folder, progress=not args.no_progress):
            return cli.interrupted(f"sweep {folder.path} interrupted")
        print(f"sweep finished: {folder.page}")
        return 0
    if args.slurm_config and not args.slurm_config.is_file():
        raise UserError(f"SLURM_CONFIG={args.slurm_config}: no such file")
    settings = slurm.SlurmOptions.make(
        args.slurm_config, partition=args.partition, account=args.account, time=args.time,
        mem=args.mem, cpus_per_task=args.cpus_per_task, max_parallel=args.max_parallel,
        signal_seconds=args.signal_seconds, gres=args.gres)
    record = slurm.submit(grid, folder, settings, progress=not args.no_progress)
    if not record:
        print(f"nothing to submit: every run of {folder.path} is finished or queued "
              f"('make sweep-status SWEEP_DIR={args.sweep_dir}')")
        return 0
    print(f"submitted {len(record['cells'])} runs as array job {record['array']} and the "
          f"summary as job {record['gather']} ({folder.sbatch}); follow them with "
          f"'make sweep-status SWEEP_DIR={args.sweep_dir}'")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name, help=text) for name, text in (
        ("run", "prepare the sweep, then train here or submit to Slurm"),
        ("status", "one line per run: pending, running at iteration K, finished, failed"),
        ("task", "one Slurm array task (inside the allocation)"),
        ("gather", "write the summary page from the run folders"))}
    for p in commands.values():
        p.add_argument("--sweep-dir", type=Path, required=True, help="the sweep folder")
    _grid_arguments(commands["run"])
    for name in ("run", "task"):
        cli.add_gpu(commands[name])
    commands["run"].add_argument("--no-progress", action="store_true")
    commands["task"].add_argument("--index", type=int,
                                  help="the cell (default: SLURM_ARRAY_TASK_ID)")
    args = ap.parse_args(argv)
    if args.command == "run":
        return _run(args)
    folder = sweep.SweepDir(args.sweep_dir.resolve())
    if args.command == "status":
        print("\n".join(sweep_status.lines(folder)))
        return 0
    if args.command == "gather":
        print(f"summary: {sweep_page.write(folder)}")
        return 0
    index = args.index if args.index is not None else os.environ.get("SLURM_ARRAY_TASK_ID")
    if index is None:
        raise UserError("task needs --index or SLURM_ARRAY_TASK_ID (it runs inside a Slurm "
                        "array; 'make sweep' submits it)")
    outcome = slurm.task(folder, int(index), args.gpu)
    print(f"task {index}: {outcome}")
    return cli.INTERRUPTED if outcome == execute.INTERRUPTED else 0


if __name__ == "__main__":
    cli.entry(main)
