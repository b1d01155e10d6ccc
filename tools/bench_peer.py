#!/usr/bin/env python3
"""Time one DRI training iteration in our Caffe and in PyTorch on the CPU, in one run (issue 20).

Same net (PyTorch's interpreted from the NetParameter Caffe loads), same initial weights, same
seeded batch, same SGD update, one thread per core; each run a fresh process loading one
framework, the configurations round-robin; best iteration and mean per configuration, the
load average before each run, and the ratio Caffe time / PyTorch time (above 1: PyTorch is
faster). dri_hep2/net/peer_bench.py says how; tests/test_torch_peer.py checks that the two
nets are the same. Needs the optional extra: pip install '.[peer]' (torch, CPU; `make
bench-peer` installs it). The default run takes about 2-3 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
from pathlib import Path

from dri_hep2 import cli, paper
from dri_hep2.engine import blas_cpu
from dri_hep2.errors import UserError
from dri_hep2.net import peer_bench


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--variant", default="dri", choices=paper.VARIANTS)
    ap.add_argument("--batch", type=int, default=paper.BATCH_SIZE)
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration (default 3)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="untimed iterations at the start of each run (default 2)")
    ap.add_argument("--iterations", type=int, default=4,
                    help="timed iterations per run (default 4)")
    ap.add_argument("--threads", type=int,
                    help="threads for both frameworks (default: one per core)")
    ap.add_argument("--configs", default=",".join(peer_bench.CONFIGS),
                    help=f"which of {', '.join(peer_bench.CONFIGS)} (default: all)")
    ap.add_argument("--seed", type=int, default=1701, help="weights, batch, dropout (1701)")
    ap.add_argument("--keep", type=Path, help="keep the prepared net, weights and batch here")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    args = ap.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in peer_bench.CONFIGS]
    if unknown:
        ap.error(f"--configs: unknown {', '.join(unknown)}")
    if importlib.util.find_spec("torch") is None:
        raise UserError("torch is not installed: pip install '.[peer]' (make bench-peer does)")

    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        start = os.getloadavg()[0]
        prep = peer_bench.worker("prepare", work, ["--variant", args.variant, "--batch",
                                                   str(args.batch), "--seed", str(args.seed)])
        print(f"prepared {args.variant}, batch {args.batch}, in {work}; load {start:.1f}",
              flush=True)
        runs = peer_bench.measure(work, configs, args.repeats, args.warmup, args.iterations,
                                  args.threads, args.seed,
                                  progress=lambda line: print(line, flush=True))
    loads = (start, os.getloadavg()[0])
    print()
    print(peer_bench.report(prep, runs, args.repeats, args.warmup, args.iterations, loads,
                            blas_cpu.cpu_info()[0]))
    if args.json:
        args.json.write_text(json.dumps(dict(prepare=prep, loads=loads, runs=[
            dict(config=r.config, load=r.load, warmup=r.warmup, **r.result) for r in runs]),
            indent=1))
    return 0


if __name__ == "__main__":
    cli.entry(main)
