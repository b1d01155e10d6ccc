"""What every entry point in tools/ shares: one way to end on a user error, one parser of GPU=.

A tool is `main(argv) -> int` plus `cli.entry(main)` under `__main__`. A `UserError` ends the
tool with one line on stderr (`<tool>: error: <what is wrong and what to run>`) and exit
status 2, as argparse does for a bad option; any other exception is a bug and keeps its
traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from .gpus import Gpus
from .errors import UserError

USER_ERROR = 2      # argparse's own status for a bad command line
INTERRUPTED = 130   # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call `main(argv)`; a UserError becomes one line on stderr and USER_ERROR."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        return USER_ERROR


def interrupted(what: str = "a training was interrupted") -> int:
    """End a tool whose training stopped early (Ctrl-C): its runs resume on the same command."""
    print(f"{what}: run the same command again to resume")
    return INTERRUPTED


def entry(main: Callable[[Sequence[str] | None], int]) -> NoReturn:
    sys.exit(run(main))


def gpu_arg(text: str) -> Gpus:
    """argparse type of --gpu: '' (CPU), '0', '0,1' or 'all'."""
    try:
        return Gpus.parse(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_gpu(ap: argparse.ArgumentParser, help: str = "empty: CPU; 0 or 0,1: Caffe's -gpu "
            "list (a pycaffe tool uses the first)") -> None:
    ap.add_argument("--gpu", type=gpu_arg, default=Gpus(), help=help)


def add_overrides(ap: argparse.ArgumentParser) -> None:
    """--max-iter / --snapshot (make's MAX_ITER= / SNAPSHOT=): every tool that trains."""
    group = ap.add_argument_group("schedule overrides", "recorded in each run's manifest; a "
                                  "run with snapshots refuses other values")
    group.add_argument("--max-iter", type=int, metavar="N",
                       help="train N iterations instead of the schedule's")
    group.add_argument("--snapshot", type=int, metavar="M",
                       help="snapshot every M iterations instead of the schedule's interval")


def overrides(args: argparse.Namespace) -> dict[str, int | None]:
    """RunConfig's keyword arguments from add_overrides' options."""
    return {"max_iter": args.max_iter, "snapshot": args.snapshot}
