#!/usr/bin/env python3
"""The main job in one command (`make demo`): a scaled synthetic I3A replica, `make data`,
short CPU training of DRI, evaluation on the test split and the report, in RUN_DIR
(results/demo). Prints the time of each phase and where the report is. A rerun reuses the
data and resumes (or skips) the training; RUN_DIR/demo_timing.json keeps every call's phase
times and how many iterations it trained, so a rerun does not hide the first run's figures.
Its last line is the range to expect (dri_hep2/experiment/demo_range.py): a seed series' spread,
since another CPU sums in another order and lands elsewhere in it."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from dri_hep2 import cli, ledger, paper
from dri_hep2.experiment import demo_range, evaluate, report, train
from dri_hep2.data import build, synthetic
from dri_hep2.experiment.run import snapshot_iteration


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-dir", type=Path, default=Path("data/demo"),
                    help="data folder of the demo (the replica goes in its synthetic_i3a/)")
    ap.add_argument("--run-dir", type=Path, default=Path("results/demo"), help="run folder")
    ap.add_argument("--scale", type=float, default=ledger.DEMO_SCALE,
                    help="replica size as a fraction of I3A's class counts (ledger T1)")
    ap.add_argument("--net", default="dri", choices=paper.VARIANTS, help="variant to train")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    progress = not args.no_progress
    synth = args.data_dir / "synthetic_i3a"
    timings: dict[str, float] = {}

    def phase(name: str, start: float) -> None:
        timings[name] = round(time.monotonic() - start, 1)
        print(f"[demo] {name}: {timings[name]:.1f} s", flush=True)

    t = time.monotonic()
    synthetic.make_replica(synth, scale=args.scale, progress=progress)
    build.build_dataset(synth, args.data_dir, progress=progress)
    phase("data", t)

    t = time.monotonic()
    cfg = train.RunConfig(net=args.net, schedule="short", data_dir=args.data_dir,
                          run_dir=args.run_dir)
    session = train.train(cfg, progress=progress)
    if session.outcome != "finished":
        return cli.interrupted("[demo] the training was interrupted")
    phase("train", t)

    t = time.monotonic()
    result = evaluate.evaluate(cfg.run_dir, args.data_dir)
    phase("eval", t)

    t = time.monotonic()
    page = report.write_report(cfg.run_dir)
    phase("report", t)
    # The session started from the snapshot it resumed (none: iteration 0).
    start = snapshot_iteration(session.resumed_from) if session.resumed_from else 0
    cfg.run.record_demo_timing(args.scale, timings, session.last_iteration - start,
                               ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    print(f"[demo] {args.net} on the synthetic replica (scale {args.scale}): "
          f"{report.headline(result)} (95 % intervals) on {result['n']} test cells; "
          f"paper on I3A: MCA {paper.TABLE3B_MCA['1+2+3']:.2f} %")
    print(f"[demo] report: {page}")
    print(f"[demo] {demo_range.expectation()}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
