#!/usr/bin/env python3
"""Rewrite a run's report from its files (`make report`): log.csv and curves.png from
train.log, eval.md and confusion.png from eval.json, and the run's README.md page."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli
from dri_hep2.experiment import report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run-dir", type=Path, required=True, help="the run folder")
    args = ap.parse_args(argv)
    print(f"report: {report.write_report(args.run_dir)}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
