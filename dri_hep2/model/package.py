"""`make package`: one archive a colleague can use, with or without Caffe.

RUN_DIR/package/<net>-<run>-iter<N>.tar.gz holds one folder of that name:

    readme.md            the model card, BVLC model-zoo style (YAML front matter, then what it
                         is, data and protocol, schedule, this run's metrics, the ledger
                         choices in force, licence, what is not inside)
    deploy.prototxt, <weights>.caffemodel, mean.binaryproto      for Caffe
    model.onnx, model.json, mean.npy, check.json                 for onnxruntime (make export)
    train_val.prototxt, solver.prototxt, run_manifest.json, eval.json, ASSUMPTIONS.md

The ONNX files come from RUN_DIR/export when it was made from the same weights, else the run
is exported (and checked) first. The archive is reproducible: sorted members, fixed owner and
time stamps (the weights' modification time), gzip without a time stamp.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

from .. import atomic, ledger, paper
from . import onnx_export
from ..errors import UserError
from ..net import proto
from .onnx_model import ExportFolder
from ..experiment.run import RunDir, sha256, snapshot_iteration

CARD = "readme.md"
# The rows of the ledger that shape a trained model (the B rows are about building Caffe).
_CARD_ROWS = re.compile(r"^[NDTU]\d{1,2}$")


def package_name(run: RunDir, weights: Path) -> str:
    net = run.read_manifest().get("net") or proto.read(run.deploy).name or "net"
    it = snapshot_iteration(weights) if "_iter_" in weights.name else None
    return f"{net}-{run.name}" + (f"-iter{it}" if it is not None else "")


def ledger_rows(path: Path = ledger.PAGE) -> list[tuple[str, str, str]]:
    """(id, unknown, our choice) of each N, D, T and U row of ASSUMPTIONS.md."""
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells and _CARD_ROWS.match(cells[0]) and len(cells) >= 4:
            rows.append((cells[0], cells[1], cells[3]))
    return rows


def _mean_file(run: RunDir) -> Path | None:
    """The mean.binaryproto the run's TEST Data layer subtracts."""
    for layer in proto.read(run.train_val).layer:
        if layer.type == "Data" and layer.transform_param.mean_file:
            path = Path(layer.transform_param.mean_file)
            return path if path.is_absolute() else run.path / path
    return None


def model_card(run: RunDir, weights: Path, info: dict, name: str, license: str) -> str:
    """readme.md: what a BVLC model-zoo entry says, for this run."""
    manifest = run.read_manifest()
    net = manifest.get("net") or info.get("net")
    solver = proto.read(run.solver, proto.caffe_pb2.SolverParameter) \
        if run.solver.is_file() else None
    train_val = proto.read(run.train_val)
    batch = next((lyr.data_param.batch_size for lyr in train_val.layer if lyr.type == "Data"
                  and not any(r.phase == proto.caffe.TEST for r in lyr.include)), None)
    bn = next((lyr.batch_norm_param.moving_average_fraction for lyr in train_val.layer
               if lyr.type == "BatchNorm"), None)
    data = run.data_folder()
    data_manifest = data.read_manifest() if data else None
    result = json.loads(run.eval_json.read_text()) if run.eval_json.is_file() else None
    caffe = manifest.get("caffe", {})
    lines = [
        "---",
        f"name: {paper.variant_title(net)} for HEp-2 cells ({name})",
        f"caffemodel: {weights.name}",
        f"caffemodel_sha256: {info['weights']['sha256']}",
        f"license: {license}",
        f"caffe_version: {caffe.get('version', 'unknown')}",
        f"toolkit_commit: {manifest.get('git', {}).get('commit') or 'unknown'}",
        "onnx: model.onnx (opset {opset}, IR {ir})".format(opset=info["onnx"]["opset"],
                                                            ir=info["onnx"]["ir_version"]),
        "---", "",
        f"# {paper.variant_title(net)}: {paper.CITATION}", "",
        "## What it is", "",
        f"A {paper.variant_title(net)} net trained with the DRI HEp-2 reproduction toolkit (BVLC Caffe). "
        f"It takes one {paper.INPUT_SIZE}x{paper.INPUT_SIZE} grey HEp-2 cell image and gives "
        "the softmax probabilities of three classifier branches (FC1, FC2, FC3: "
        "`loss1/prob`, `loss2/prob`, `loss3/prob`) and their sum (`prob`, the paper's sum "
        "layer); the call is the arg-max of the sum. Classes, in label order: "
        + ", ".join(f"{k} {c}" for k, c in enumerate(info["classes"])) + ".", "",
        "Input: decode the cell as 8-bit grey, resize it to "
        f"{paper.INPUT_SIZE}x{paper.INPUT_SIZE} (area averaging when shrinking, bilinear "
        "when enlarging), "
        + ("min-max stretch it first (this run's data used --stretch), " if
           info["preprocessing"]["stretch"] else "")
        + f"subtract `mean.npy` (= `mean.binaryproto`), multiply by "
        f"{info['preprocessing']['scale']:g}. `model.json` says the same for programs.", "",
        "## Files", "",
        "| file | what |", "|---|---|",
        "| `deploy.prototxt`, `" + weights.name + "` | the net and its weights for Caffe |",
        "| `mean.binaryproto`, `mean.npy` | the training mean image (Caffe / NumPy) |",
        "| `model.onnx`, `model.json` | the same net for onnxruntime, and how to feed it |",
        f"| `check.json` | the export checked against pycaffe on {info['check']['cells']} "
        f"cells: fused probabilities within {info['check']['fused_max_abs_diff']:.2g}, "
        f"labels identical: {info['check']['labels_identical']} |",
        "| `train_val.prototxt`, `solver.prototxt` | what Caffe trained (data paths are those "
        "of the training machine) |",
        f"| `{RunDir.manifest}`, `{RunDir.eval_json}` | the run's record and evaluation |",
        "| `ASSUMPTIONS.md` | the assumptions ledger of the toolkit |", "",
        "Use it without Caffe (`pip install onnxruntime`; the toolkit's `make predict "
        "BACKEND=onnx MODEL=<this folder> IMAGES=<cells> OUT=<folder>` does all of this):", "",
        "```python",
        "import json, cv2, numpy as np, onnxruntime as ort",
        "info = json.load(open('model.json'))",
        "grey = cv2.imread('cell.png', cv2.IMREAD_GRAYSCALE)",
        "# INTER_AREA for a cell larger than the input, INTER_LINEAR for a smaller one",
        f"view = cv2.resize(grey, ({paper.INPUT_SIZE}, {paper.INPUT_SIZE}), "
        "interpolation=cv2.INTER_AREA)",
        "x = ((view - np.load('mean.npy')) * info['preprocessing']['scale'])"
        ".astype(np.float32)[None]",
        "prob = ort.InferenceSession('model.onnx').run(['prob'], {'data': x})[0][0] / 3",
        "print(info['classes'][prob.argmax()], prob.max())",
        "```", "",
        "## Data and protocol", "",
    ]
    if data_manifest:
        params, splits = data_manifest.get("parameters", {}), data_manifest.get("splits", {})
        inputs = data_manifest.get("inputs", {})
        lines += [f"- cells from `{inputs.get('folder')}` ({inputs.get('layout')} layout, "
                  f"{inputs.get('files')} files, sha256 `{str(inputs.get('sha256'))[:16]}`)",
                  f"- split protocol `{params.get('protocol')}` (seed {params.get('seed')}): "
                  + ", ".join(f"{s} {v.get('cells', v.get('total'))} cells"
                              for s, v in splits.items()),
                  f"- training cells rotated in steps of {params.get('rotation_steps_deg')} "
                  f"degrees (per class), border `{params.get('border')}`, stretch "
                  f"{params.get('stretch')}; {splits.get('train', {}).get('total')} training "
                  "images"]
    else:
        lines.append(f"- data folder `{manifest.get('data_dir')}` (its manifest was not "
                     "readable when this package was made)")
    lines += ["- the paper's protocol: section 3.2 (64/16/20 split, rotation augmentation; "
              "Table 2)", "", "## Schedule", ""]
    if solver:
        named = f"`{manifest['schedule']}` schedule: " if manifest.get("schedule") else ""
        lines.append(f"- {named}{solver.type or 'SGD'}, "
                     f"base_lr {solver.base_lr:g}, `{solver.lr_policy}` policy (gamma "
                     f"{solver.gamma:g}, stepsize {solver.stepsize}), momentum "
                     f"{solver.momentum:g}, weight decay {solver.weight_decay:g}, "
                     f"{solver.max_iter} iterations of batch {batch}; BatchNorm moving "
                     f"average fraction {bn if bn is not None else 0.999:g}")
    lines += [f"- weights: `{weights.name}` (iteration {info['weights'].get('iteration')}), "
              f"device {'GPU ' + manifest['gpu'] if manifest.get('gpu') else 'CPU'}", "",
              "## Metrics of this run", ""]
    if result:
        lines += [f"On {result['n']} cells of the `{result.get('split')}` split "
                  f"(`make eval`), rates in %:", "",
                  "| branches fused | MCA | ACA | paper MCA (I3A) |", "|---|---:|---:|---:|"]
        for combo, s in result["combos"].items():
            paper_mca = paper.TABLE3B_MCA.get(combo)
            lines.append(f"| {combo} | {100 * s['mca']:.2f} | {100 * s['aca']:.2f} | "
                         f"{'-' if paper_mca is None else f'{paper_mca:.2f}'} |")
        lines.append("")
        if "synthetic" in str((data_manifest or {}).get("inputs", {}).get("folder", "")):
            lines += ["These figures are on the toolkit's synthetic replica: they show that "
                      "the pipeline works, not what the net does on real cells.", ""]
    else:
        lines += ["Not evaluated (`make eval` was not run before packaging).", ""]
    lines += ["## Choices in force", "",
              "What the paper leaves open and this toolkit chose (ASSUMPTIONS.md, inside):", "",
              "| id | unknown | our choice |", "|---|---|---|"]
    lines += [f"| {i} | {u} | {c} |" for i, u, c in ledger_rows()]
    sessions = manifest.get("sessions", [])
    lines += ["", "## Run manifest", "",
              f"- net `{net}`, schedule `{manifest.get('schedule')}`, Caffe "
              f"{caffe.get('version')} ({caffe.get('mode')}, build {caffe.get('build_id')})",
              f"- toolkit commit {manifest.get('git', {}).get('commit') or 'unknown'}"
              + (" (with uncommitted changes)" if manifest.get("git", {}).get("dirty") else ""),
              f"- {len(sessions)} training session(s); last: "
              + (f"{sessions[-1].get('outcome')} at iteration "
                 f"{sessions[-1].get('last_iteration')}" if sessions else "none recorded"),
              f"- `{RunDir.manifest}` (inside) has the hashes of the prototxts and of the "
              "data manifest", "",
              "## Licence", "",
              f"The weights: {license} (ASSUMPTIONS.md U7), as the toolkit. Weights trained "
              "on I3A are derived from a data set with its own terms of use: whoever "
              "distributes them checks those terms first.", "",
              "## Not inside", "",
              "No cell images: I3A may not be redistributed and is not in this archive; "
              "neither is the training data folder (LMDBs). Get I3A from its owners and "
              "rebuild the data with `make data`.", ""]
    return "\n".join(lines)


def package(run_dir: str | Path, *, weights: str | Path | None = None,
            data_dir: str | Path | None = None, license: str = ledger.WEIGHTS_LICENSE,
            out: str | Path | None = None) -> Path:
    """`make package`: the archive; exports (and checks) the run first if needed."""
    run = RunDir(run_dir).require(RunDir.deploy, RunDir.train_val)
    weights = run.weights(weights)
    export = ExportFolder(run.export)
    fresh = (export.info.is_file() and export.model.is_file() and export.mean.is_file()
             and export.read_info().get("weights", {}).get("sha256") == sha256(weights))
    if not fresh:
        onnx_export.export(run, weights=weights, data_dir=data_dir)
    info = export.read_info()
    name = package_name(run, weights)
    mean = _mean_file(run)
    # Each member is named by the owner of its folder's layout (RunDir, ExportFolder).
    members: dict[str, bytes] = {
        CARD: model_card(run, weights, info, name, license).encode(),
        RunDir.deploy: run.deploy.read_bytes(),
        weights.name: weights.read_bytes(),
        ExportFolder.model: export.model.read_bytes(),
        ExportFolder.info: export.info.read_bytes(),
        ExportFolder.mean: export.mean.read_bytes(),
        RunDir.train_val: run.train_val.read_bytes(),
        ledger.PAGE.name: ledger.PAGE.read_bytes(),
    }
    optional = {"mean.binaryproto": mean, ExportFolder.check: export.check,
                RunDir.solver: run.solver, RunDir.manifest: run.manifest,
                RunDir.eval_json: run.eval_json}
    members.update({k: p.read_bytes() for k, p in optional.items() if p and p.is_file()})
    if mean is None or not mean.is_file():
        raise UserError(f"the mean image of {run.train_val} ({mean}) is missing: the package "
                        "needs it; give the run its data folder back or run 'make data'")
    path = Path(out) if out else run.package / f"{name}.tar.gz"
    mtime = int(weights.stat().st_mtime)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for member in sorted(members):
                data = members[member]
                entry = tarfile.TarInfo(f"{name}/{member}")
                entry.size, entry.mtime, entry.mode = len(data), mtime, 0o644
                tar.addfile(entry, io.BytesIO(data))
    atomic.write_bytes(path, buf.getvalue())
    atomic.write_text(path.with_name(path.name + ".sha256"),
                      f"{hashlib.sha256(buf.getvalue()).hexdigest()}  {path.name}\n")
    return path

