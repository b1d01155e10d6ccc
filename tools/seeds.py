#!/usr/bin/env python3
"""A seed series (`make seeds`): N trainings of one configuration that differ only in Caffe's
random_seed (with --vary-split also in the seed of the split and the training order, each on a
data folder rebuilt from the same I3A copy), each evaluated and reported, in
<RUN_DIR>-seeds/seed-1..N, then <RUN_DIR>-seeds/README.md: MCA and ACA of each Table 3(b)
fusion as mean ± standard deviation (range) beside the paper's single figures. seed-1 is the
configuration of `make train` (a finished RUN_DIR with the same files is copied, not trained
again). An interrupted series resumes."""
from __future__ import annotations

import argparse
from pathlib import Path

from dri_hep2 import cli, paper, schedules
from dri_hep2.experiment import experiments, train
from dri_hep2.net import options


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--net", default="dri", choices=paper.VARIANTS, help="variant (Table 3(a))")
    ap.add_argument("--schedule", default="paper", choices=schedules.SCHEDULES,
                    help="training schedule of every run")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="data folder")
    ap.add_argument("--run-dir", type=Path,
                    help="the run the series belongs to (default results/<net>); the series "
                         "goes to <run-dir>-seeds")
    ap.add_argument("-n", "--n", type=int, default=5, help="number of seeds (default 5)")
    ap.add_argument("--vary-split", action="store_true",
                    help="also vary the split seed (rebuilds DATA_DIR-split<seed> from the I3A "
                         "folder its manifest names)")
    cli.add_gpu(ap)
    cli.add_overrides(ap)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    options.add_arguments(ap.add_argument_group("net knobs", "as for train.py (ASSUMPTIONS.md)"))
    args = ap.parse_args(argv)
    base = train.RunConfig(net=args.net, schedule=args.schedule, data_dir=args.data_dir,
                           run_dir=args.run_dir, gpus=args.gpu,
                           net_options=options.from_arguments(args), **cli.overrides(args))
    series = experiments.run_series(base, args.n, args.vary_split,
                                    progress=not args.no_progress)
    if series is None:
        return cli.interrupted()
    print(f"seeds summary: {series.page}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
