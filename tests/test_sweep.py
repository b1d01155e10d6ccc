"""Sweeps on this host (SCHEDULER=local): the plan, the sweep folder, refusals, and a real 2 x 2
grid through `caffe train` (shallow_inception and DRI x 2 seeds, 12 iterations each, on a
tiny synthetic replica). The Slurm executor against a real one-node Slurm: test_sweep_slurm.py.
"""
from __future__ import annotations

import importlib.util
import json

import pytest

from dri_hep2 import cli, ledger
from dri_hep2.errors import UserError
from dri_hep2.experiment import execute, slurm, sweep, sweep_page, sweep_status
from dri_hep2.experiment.plan import Grid
from dri_hep2.experiment.run import RunDir
from dri_hep2.folders import REPO_ROOT

def tool(name: str):
    """A tool's main(argv), imported from tools/ (as test_cv does)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_a_grid_expands_into_named_cells_with_fingerprints(tmp_path):
    grid = Grid(nets=("sri", "dri"), seeds=2, schedule="short", data_dir=tmp_path, max_iter=9)
    cells = grid.cells(lambda net, k, fold: tmp_path / f"{net}-{k}")
    assert [c.name for c in cells] == ["sri-seed1", "sri-seed2", "dri-seed1", "dri-seed2"]
    assert [c.index for c in cells] == [0, 1, 2, 3]
    assert [c.config.seed for c in cells] == [ledger.RANDOM_SEED, ledger.RANDOM_SEED + 1] * 2
    assert all(c.config.max_iter == 9 for c in cells)
    prints = [c.fingerprint() for c in cells]
    assert len(set(prints)) == 4
    assert prints == [c.fingerprint() for c in grid.cells(lambda *a: tmp_path / "elsewhere")]


def test_a_grid_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(UserError, match="NETS=resnet"):
        Grid(nets=("resnet",))
    with pytest.raises(UserError, match="SEEDS=0"):
        Grid(seeds=0)
    with pytest.raises(UserError, match="give I3A="):
        Grid(protocol="kfold")


def test_slurm_array_spec_and_settings_file(tmp_path):
    assert slurm.array_spec([0, 1, 2, 3], 2) == "0-3%2"
    assert slurm.array_spec([1, 3], None) == "1,3"
    assert slurm.array_spec([2], 1) == "2%1"
    config = tmp_path / "slurm.conf"
    config.write_text("# my cluster\npartition = gpu\ntime = 12:00:00\nmax_parallel = 4\n")
    options = slurm.SlurmOptions.make(config, time="2:00:00", partition=None)
    assert (options.partition, options.time, options.max_parallel) == ("gpu", "2:00:00", 4)
    config.write_text("partition = gpu\nwalltime = 1:00:00\n")
    with pytest.raises(UserError, match=f"{config}:2: expected 'key = value'"):
        slurm.SlurmOptions.make(config)
    config.write_text("max_parallel = many\n")
    with pytest.raises(UserError, match=f"{config}:1: max_parallel takes a whole number"):
        slurm.SlurmOptions.make(config)


def test_slurm_times_and_a_limit_too_short_for_the_warning():
    assert [slurm.time_seconds(t) for t in ("90", "5:30", "2:00:00", "1-12", "1-00:30",
                                            "2-01:02:03")] == [
        5400, 330, 7200, 129600, 88200, 2 * 86400 + 3723]
    assert slurm.time_seconds("UNLIMITED") is None
    with pytest.raises(UserError, match="time = 1h: not a Slurm time"):
        slurm.SlurmOptions.make(time="1h")
    # Slurm sends USR1 up to a minute early: a limit of 300 s + 1 minute could warn a task as
    # it starts, every time it is requeued.
    with pytest.raises(UserError, match=r"time = 6: a task's time limit must exceed "
                                        r"signal_seconds \(300 s\) by 120 s"):
        slurm.SlurmOptions.make(time="6")
    assert slurm.SlurmOptions.make(time="7").time == "7"
    assert slurm.SlurmOptions.make(time="3", signal_seconds="60").signal_seconds == 60


def test_the_sbatch_script_says_what_it_does(tmp_path, sweep_data):
    folder = sweep.SweepDir(tmp_path / "sw")
    grid = Grid(nets=("sri",), seeds=3, schedule="short", data_dir=sweep_data)
    cells = grid.cells(folder.run_dir)
    options = slurm.SlurmOptions(partition="gpu", time="4:00:00", mem="8G", max_parallel=2)
    text = slurm.sbatch_text(folder, cells, options, grid.gpus)
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --requeue", "#SBATCH --partition=gpu",
                 f"#SBATCH --signal=B:USR1@{ledger.SLURM_SIGNAL_SECONDS}",
                 "#SBATCH --time=4:00:00", "#SBATCH --mem=8G",
                 f"#SBATCH --output={folder.slurm_logs}/%A_%a.out", "#SBATCH --open-mode=append",
                 "trap '' USR1"):
        assert line in text.splitlines()
    assert "--gres" not in text and text.splitlines()[-1].startswith("exec ")
    assert "task --sweep-dir" in text.splitlines()[-1]
    from dri_hep2.gpus import Gpus
    assert "#SBATCH --gres=gpu:1" in slurm.sbatch_text(folder, cells, options, Gpus((0,)))


@pytest.mark.slow
def test_a_local_sweep_trains_evaluates_summarises_and_resumes_nothing(
        local_sweep, sweep_data, sweep_grid_args, capsys):
    # local_sweep (conftest) has run `tools/sweep.py run` with these arguments once.
    argv = ["run", "--sweep-dir", str(local_sweep), "--data-dir", str(sweep_data),
            *sweep_grid_args]
    sw = sweep.SweepDir(local_sweep)
    _, cells = sweep.load(sw)
    assert [c.name for c in cells] == ["shallow_inception-seed1", "shallow_inception-seed2",
                                       "dri-seed1", "dri-seed2"]
    for cell in cells:
        run = RunDir(cell.run_dir)
        result = json.loads(run.eval_json.read_text())
        assert result["iteration"] == 12 and run.page.is_file()
        manifest = run.read_manifest()
        assert manifest["fingerprint"] == cell.fingerprint()
        assert manifest["overrides"] == {"max_iter": 12, "snapshot": 6}
        assert execute.is_done(cell)
    summary = json.loads(sw.summary.read_text())
    assert summary["nets"]["dri"]["finished"] == 2 and summary["nets"]["dri"]["vs_dri"] is None
    vs = summary["nets"]["shallow_inception"]["vs_dri"]
    assert vs["pairs"] == 2 and 0 <= vs["p"] <= 1
    mcas = [r["mca"] for r in summary["runs"] if r["net"] == "dri"]
    assert summary["nets"]["dri"]["spread"]["mca"]["max"] == max(mcas)
    page = sw.page.read_text()
    assert "beside Table 3(a)" in page and "| DRI | 2/2 |" in page and "98.37" in page
    assert "(runs/dri-seed2/README.md)" in page
    status = sweep_status.lines(sw)
    assert len(status) == 4 and all("finished: MCA" in line for line in status)

    # The same command again trains nothing; the logs stay as they were.
    logs = [RunDir(c.run_dir).log.read_text() for c in cells]
    capsys.readouterr()
    assert cli.run(tool("sweep"), argv) == 0
    assert capsys.readouterr().out.count(": done,") == 4
    assert [RunDir(c.run_dir).log.read_text() for c in cells] == logs

    # Another plan on the same folder: refused, saying what differs; nothing written.
    before = sw.plan.read_text()
    other = [a if a != "2" else "3" for a in argv]
    assert cli.run(tool("sweep"), other) == 2
    err = capsys.readouterr().err
    assert "holds a sweep of another plan (seeds: 2 -> 3)" in err
    assert sw.plan.read_text() == before
    # The page is a function of the run folders alone (what the Slurm gather job relies on).
    assert sweep_page.page(sweep_page.summarize(sw)) == page


def test_two_sweeps_on_one_folder_the_second_is_refused(tmp_path, sweep_data, sweep_grid_args,
                                                        capsys):
    sw = sweep.SweepDir(tmp_path / "sweep")
    argv = ["run", "--sweep-dir", str(sw.path), "--data-dir", str(sweep_data), *sweep_grid_args]
    with sweep.locked(sw):
        assert cli.run(tool("sweep"), argv) == 2
    assert f"another 'make sweep' is working on {sw.path}" in capsys.readouterr().err
    assert not sw.plan.exists() and not sw.runs.exists()


def test_a_sweep_refuses_missing_data_and_slurm_without_sbatch(tmp_path, monkeypatch,
                                                               sweep_grid_args, capsys):
    argv = ["run", "--sweep-dir", str(tmp_path / "sw"), *sweep_grid_args]
    assert cli.run(tool("sweep"), argv + ["--data-dir", str(tmp_path / "nodata")]) == 2
    assert "nodata/lmdb/train missing" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))       # no sbatch anywhere
    assert cli.run(tool("sweep"), argv + ["--scheduler", "slurm"]) == 2
    assert "SCHEDULER=slurm needs Slurm's sbatch on PATH" in capsys.readouterr().err
    assert not (tmp_path / "sw").exists()
