"""A run folder (make's RUN_DIR): the one place that names its files and reads its state.

    solver.prototxt, train_val.prototxt, deploy.prototxt   what Caffe ran (experiment.train)
    snapshots/<net>_iter_<N>.{caffemodel,solverstate}      Caffe's snapshots
    snapshots/broken/                                      snapshots set aside on resume
    train.log, log.csv, curves.png                         the log, parsed, plotted
    train.lock                                             held while a training runs
    run_manifest.json                                      code, Caffe build, inputs, sessions
    eval.json, eval.md, confusion.png                      the evaluation (experiment.evaluate)
    README.md                                              the results page (experiment.report)

Caffe runs with the run folder as its working directory, so the solver's paths
(`train_val.prototxt`, `snapshots/<net>`) and the `.solverstate` files stay valid if the folder
is moved; only the data paths inside `train_val.prototxt` are absolute.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
from pathlib import Path

from .. import atomic
from ..engine import caffe_env
from ..classes import ClassList
from ..data.folder import DataFolder
from ..errors import UserError
from ..folders import REPO_ROOT, Folder, member

_ITER_OF = re.compile(r"_iter_(\d+)\.(solverstate|caffemodel)$")
# The layer types of our nets that hold weights (a snapshot lacking one is cut short).
_LEARNING_TYPES = {"Convolution", "InnerProduct", "BatchNorm", "Scale", "PReLU"}


class RunMismatch(UserError):
    """The run folder holds snapshots of a different net, solver or data set."""


def _blob_size(blob) -> int:
    dims = list(blob.shape.dim) or [blob.num, blob.channels, blob.height, blob.width]
    return math.prod(dims)


def _snapshot_fault(state_path: Path, run_path: Path) -> str | None:
    """Why a .solverstate and the .caffemodel it names cannot be resumed from, or None.

    Both must parse and be whole: the state's iteration is the one in its name, the model it
    names exists, every blob holds as many values as its shape says, the model has a layer with
    weights for every layer of the run's train net that learns, and the state one history blob
    per weight blob. (Caffe writes the model first, then the state; patch 12 makes each write
    whole or absent; the stock build writes in place, and a file cut at a field boundary still
    parses.)"""
    from google.protobuf.message import DecodeError
    from ..net import proto                 # pycaffe only when a run resumes
    iteration = snapshot_iteration(state_path)
    state, model = proto.caffe_pb2.SolverState(), proto.caffe_pb2.NetParameter()
    try:
        state.ParseFromString(state_path.read_bytes())
    except DecodeError:
        return "its .solverstate does not parse"
    if state.iter != iteration:
        return f"its .solverstate holds iteration {state.iter}"
    model_path = run_path / state.learned_net
    if not state.learned_net or not model_path.is_file():
        return f"the .caffemodel it names ({state.learned_net or 'none'}) is missing"
    try:
        model.ParseFromString(model_path.read_bytes())
    except DecodeError:
        return f"{model_path.name} does not parse"
    weights = [blob for layer in model.layer for blob in layer.blobs]
    if any(len(blob.data) != _blob_size(blob) for blob in weights):
        return f"{model_path.name} holds a blob cut short"
    learning = {layer.name for layer in proto.read(run_path / RunDir.train_val).layer
                if layer.type in _LEARNING_TYPES}
    missing = learning - {layer.name for layer in model.layer if layer.blobs}
    if missing:
        return f"{model_path.name} lacks {len(missing)} layers' weights (cut short)"
    if len(state.history) != len(weights) \
            or any(len(blob.data) != _blob_size(blob) for blob in state.history):
        return "its .solverstate's history does not match the model (cut short)"
    return None


def snapshot_iteration(path: Path) -> int:
    """N of a Caffe snapshot `<prefix>_iter_<N>.caffemodel|solverstate`."""
    m = _ITER_OF.search(Path(path).name)
    if not m:
        raise UserError(f"{path} is not a Caffe snapshot (<prefix>_iter_<N>.caffemodel)")
    return int(m.group(1))


def sha256(path: Path) -> str | None:
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def git_commit() -> dict[str, object]:
    """The toolkit's commit and whether tracked files differ from it."""
    def git(*args: str) -> str:
        # No git (a container) or no repository (a copied tree): the run is recorded without
        # a commit rather than refused.
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                                 text=True)
        except FileNotFoundError:
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


class RunDir(Folder):
    """Paths and state of one run folder."""

    solver = member("solver.prototxt")
    train_val = member("train_val.prototxt")
    deploy = member("deploy.prototxt")
    snapshots = member("snapshots")
    broken = member("snapshots/broken")      # pairs that resume_state set aside
    log = member("train.log")
    log_csv = member("log.csv")
    curves = member("curves.png")
    manifest = member("run_manifest.json")
    eval_json = member("eval.json")
    eval_md = member("eval.md")
    confusion = member("confusion.png")
    page = member("README.md")
    export = member("export")
    explain = member("explain")
    explain_summary = member("explain/explain.json")
    predictions = member("predict")
    package = member("package")
    demo_timing = member("demo_timing.json")
    lock = member("train.lock")

    @classmethod
    def prototxts(cls) -> tuple[str, str, str]:
        """The files that say what Caffe ran (hashed into the manifest)."""
        return cls.solver, cls.train_val, cls.deploy

    def class_names(self) -> tuple[str, ...]:
        """The run's class order: label k of its nets is class_names()[k] (`classes()`'s
        names: what predict, export, explain and package name their outputs by)."""
        return tuple(self.classes().names)

    def data_folder(self) -> DataFolder | None:
        """The data folder the run was trained on (its manifest's data_dir), if it exists."""
        data_dir = self.read_manifest().get("data_dir")
        return DataFolder(data_dir) if data_dir and Path(data_dir).is_dir() else None

    def input_stretch(self) -> bool:
        """Whether the run's cells were min-max stretched before the resize (make data's
        --stretch, ASSUMPTIONS.md D4): prediction must do what the data build did."""
        data = self.data_folder()
        manifest = data.read_manifest() if data else None
        if manifest is None:
            return False     # the build's default; a folder moved away cannot say otherwise
        return bool(manifest.get("parameters", {}).get("stretch", False))

    def snapshot_prefix(self, net: str) -> str:
        """The solver's snapshot_prefix, relative to the run folder (Caffe runs inside it)."""
        return f"{RunDir.snapshots}/{net}"

    # --- snapshots -----------------------------------------------------------------------------
    def newest(self, suffix: str) -> Path | None:
        """The snapshot with the highest iteration (`solverstate` or `caffemodel`)."""
        found = list(self.snapshots.glob(f"*_iter_*.{suffix}"))
        return max(found, key=snapshot_iteration) if found else None

    def resume_state(self, say=print) -> Path | None:
        """The newest .solverstate that resumes: its pair checked (`_snapshot_fault`), a pair
        that fails moved into snapshots/broken/ with one line said, the one before tried.
        Temporary files of a write that was killed (patch 12's `<file>.tmp`) are removed."""
        for leftover in self.snapshots.glob("*.tmp"):
            say(f"removing {leftover}: a snapshot write that did not finish")
            leftover.unlink()
        states = sorted(self.snapshots.glob("*_iter_*.solverstate"), key=snapshot_iteration,
                        reverse=True)
        for state in states:
            fault = _snapshot_fault(state, self.path)
            if fault is None:
                return state
            self.broken.mkdir(exist_ok=True)
            pair = [state, state.with_suffix(".caffemodel")]
            for path in pair:
                if path.is_file():
                    path.rename(self.broken / path.name)
            say(f"{state} cannot be resumed from ({fault}): moved with its .caffemodel into "
                f"{self.broken}; trying the snapshot before it")
        return None

    def weights(self, given: str | Path | None = None) -> Path:
        """The .caffemodel to use: `given` (WEIGHTS=) or the newest snapshot."""
        if given:
            given = Path(given)
            if not given.is_file():
                raise UserError(f"WEIGHTS={given}: no such file")
            return given
        newest = self.newest("caffemodel")
        if newest is None:
            raise UserError(f"no snapshot in {self.snapshots}: run 'make train "
                            f"RUN_DIR={self.path}' first, or give WEIGHTS=<.caffemodel>")
        return newest

    def require(self, *names: str) -> "RunDir":
        """Refuse a run folder without the files a tool reads, saying what makes them."""
        if not self.path.is_dir():
            raise UserError(f"no run folder {self.path}: run 'make train RUN_DIR={self.path}' "
                            "first (or 'make demo')")
        makers = {RunDir.eval_json: "make eval"}     # the others: make train
        for name in names:
            if not (self.path / name).is_file():
                raise UserError(f"{self.path / name} missing: run "
                                f"'{makers.get(name, 'make train')} RUN_DIR={self.path}' first")
        return self

    # --- manifest ------------------------------------------------------------------------------
    def classes(self) -> ClassList:
        """The class list this run was trained on (Caffe label = index; the nets' classifier
        width), as `make train` recorded it from the data folder; I3A's six for a run made
        before class lists were recorded. What evaluation, reports and predictions name the
        outputs by."""
        return ClassList.from_manifest(self.read_manifest().get("classes"))

    def record_demo_timing(self, scale: float, seconds: dict[str, float],
                           iterations: int, ended: str) -> list[dict]:
        """Append one `make demo` call to demo_timing.json ({"scale", "runs"}, oldest first):
        its phase seconds and the iterations it trained, so that a rerun which only skips a
        finished training does not overwrite the first call's figures. Returns the runs."""
        old = json.loads(self.demo_timing.read_text()) if self.demo_timing.is_file() else {}
        runs = old.get("runs", []) + [{"ended": ended, "iterations_trained": iterations,
                                       "seconds": seconds}]
        atomic.write_text(self.demo_timing,
                          json.dumps({"scale": scale, "runs": runs}, indent=2) + "\n")
        return runs

    def read_manifest(self) -> dict:
        """run_manifest.json, or {} for a folder that has none (made by hand)."""
        return json.loads(self.manifest.read_text()) if self.manifest.is_file() else {}

    def write_manifest(self, data: DataFolder | None, sessions: list[dict],
                       extra: dict) -> Path:
        """run_manifest.json: code, Caffe build, input hashes and every session's command."""
        manifest = {
            **extra,
            "git": git_commit(),
            "caffe": caffe_env.build_info(),
            "sha256": {**{name: sha256(self.path / name) for name in self.prototxts()},
                       "data manifest.json": sha256(data.manifest) if data else None},
            "data_dir": str(data.path.resolve()) if data else None,
            "sessions": sessions,
        }
        return atomic.write_text(self.manifest, json.dumps(manifest, indent=2) + "\n")

    def check_unchanged(self, files: dict[str, str]) -> int | None:
        """Before resuming from a snapshot: the run's prototxts must be what they were, but
        for a larger max_iter (MAX_ITER= extending a run, which Caffe resumes like any other).
        Returns the old max_iter when the run is being extended, else None."""
        changed = [name for name, text in files.items()
                   if not (self.path / name).is_file() or (self.path / name).read_text() != text]
        extended = None
        if RunDir.solver in changed:
            from ..net import proto
            old = proto.read(self.solver, proto.caffe_pb2.SolverParameter)
            new = proto.caffe_pb2.SolverParameter()
            proto.text_format.Merge(files[RunDir.solver], new)
            fields = [f"{field.name}: {getattr(old, field.name)} -> {getattr(new, field.name)}"
                      for field in new.DESCRIPTOR.fields if not field.is_repeated
                      and getattr(old, field.name) != getattr(new, field.name)]
            if fields == [f"max_iter: {old.max_iter} -> {new.max_iter}"] \
                    and new.max_iter > old.max_iter:
                changed.remove(RunDir.solver)
                extended = old.max_iter
            elif fields:
                changed[changed.index(RunDir.solver)] = f"{RunDir.solver} ({'; '.join(fields)})"
        if changed:
            raise RunMismatch(
                f"{self.path} holds snapshots of another configuration ({', '.join(changed)} "
                f"would change): use a new RUN_DIR, or delete {self.snapshots} to start over")
        return extended
