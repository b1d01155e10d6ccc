#!/usr/bin/env python3
"""Time our `make data` build against what a user would otherwise do on the same cells: write
every rotated training image as a PNG (one process, the same rotation), then Caffe's
`convert_imageset` (resize to 76x76, grey, shuffle) per split and `compute_image_mean`.
Both run in this one invocation on a synthetic replica (I3A-sized at --scale 1), so the ratio
compares like with like. Prints the figures as JSON (and writes them with --json)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import cv2

from dri_hep2 import atomic, cli, ledger, paper
from dri_hep2.engine import caffe_env
from dri_hep2.data import augment, build, i3a, split, synthetic
from dri_hep2.data.folder import DataFolder


def baseline(replica: Path, data_dir: Path, work: Path) -> dict:
    """The user's route on the cells and split of our build; seconds per stage."""
    t, out = time.perf_counter(), {}
    labels = {name.lower(): c for c, name in enumerate(paper.CLASSES)}
    lists = {}
    for name in split.SPLITS:
        entries = []
        for cell_id, cls in ((r["id"], r["class"]) for r in DataFolder(data_dir).read_split(name)):
            label = labels[cls.lower()]
            if name != "train":
                entries.append((replica / f"{cell_id}.png", label))
                continue
            img = i3a.decode_png(replica / f"{cell_id}.png")
            h, w = img.shape
            for angle in augment.rotation_angles(label):
                m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
                rot = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT_101)
                path = work / "png" / f"{cell_id}_r{angle:03d}.png"
                path.parent.mkdir(exist_ok=True)
                cv2.imwrite(str(path), rot)
                entries.append((path, label))
        lists[name] = work / f"{name}.txt"
        lists[name].write_text("".join(f"{p.name if name == 'train' else p} {lab}\n"
                                       for p, lab in entries))
    out["rotated_pngs_s"] = round(time.perf_counter() - t, 2)
    for name in split.SPLITS:
        root = f"{work / 'png'}/" if name == "train" else "/"
        _tool(out, "convert_imageset", ["--gray", "--shuffle",
                                        f"--resize_height={paper.INPUT_SIZE}",
                                        f"--resize_width={paper.INPUT_SIZE}",
                                        root, str(lists[name]), str(work / f"lmdb_{name}")])
    _tool(out, "compute_image_mean", [str(work / "lmdb_train"), str(work / "mean.binaryproto")])
    return out


def _tool(out: dict, name: str, args: list[str]) -> None:
    """Run one of Caffe's tools, adding its seconds to out[name + "_s"]."""
    t = time.perf_counter()
    run = subprocess.run([str(caffe_env.caffe_tool(name)), *args], capture_output=True,
                         text=True)
    if run.returncode:
        raise RuntimeError(f"{name} failed:\n{run.stderr[-2000:]}")
    out[f"{name}_s"] = round(out.get(f"{name}_s", 0) + time.perf_counter() - t, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="replica size as a fraction of I3A (1.0: 13,596 cells, 192,540 "
                         "augmented training images)")
    ap.add_argument("--workers", type=int, default=None, help="processes for our build")
    ap.add_argument("--seed", type=int, default=ledger.RANDOM_SEED)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    figures = {"scale": args.scale, "cores": os.cpu_count(), "workers": args.workers or
               os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_data.") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        replica = synthetic.make_replica(tmp / "i3a", scale=args.scale, seed=args.seed,
                                         workers=args.workers, montage=False, progress=False)
        figures["replica_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        manifest = build.build_dataset(replica, tmp / "data", seed=args.seed,
                                       workers=args.workers, progress=False)
        figures["ours_s"] = round(time.perf_counter() - t, 2)
        figures["images"] = {s: manifest["splits"][s]["total"] for s in split.SPLITS}
        (tmp / "work").mkdir()
        figures["baseline"] = baseline(replica, tmp / "data", tmp / "work")
    stages = [v for k, v in figures["baseline"].items() if k.endswith("_s")]
    figures["baseline_s"] = round(sum(stages), 2)
    figures["ratio"] = round(figures["baseline_s"] / figures["ours_s"], 2)
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        atomic.write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    cli.entry(main)
