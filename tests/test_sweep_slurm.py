"""SCHEDULER=slurm against a real one-node Slurm (tests/slurm_cluster.py: munged, slurmctld and
slurmd started for this module, stopped after it; no mocks): the 2 x 2 grid of test_sweep
submitted as a job array and gathered, with the same page as the local executor; a task
cancelled mid-training and resubmitted resumes while finished runs are not trained again;
`sweep-status` on pending, running and finished tasks; the refusals that need a cluster (an
unknown partition, missing data: one line, exit 2, nothing submitted). The refusal without
sbatch is in test_sweep.py.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import time

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (the fixture)

from dri_hep2 import cli
from dri_hep2.experiment import slurm, sweep, sweep_status
from dri_hep2.experiment.run import RunDir
from dri_hep2.folders import REPO_ROOT

# Bounds for a sweep's jobs to leave the queue (2 CPUs: two tasks at a time).
WAIT_S = 900


def sweep_main(argv) -> int:
    spec = importlib.util.spec_from_file_location("sweep_tool", REPO_ROOT / "tools" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cli.run(module.main, argv)


def our_jobs() -> list[str]:
    """Every job of this user that has not ended (array tasks as <array>_<index>)."""
    out = subprocess.run(["squeue", "-h", "-r", "--me", "-t", slurm.ACTIVE_STATES, "-o", "%i"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def outputs(sw: sweep.SweepDir) -> str:
    """The end of every Slurm output file of the sweep, for a failure's message."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                     for p in sorted(sw.slurm_logs.glob("*.out")))


def wait_until(what: str, done, sw: sweep.SweepDir, timeout: float = WAIT_S) -> None:
    """Poll `done()` once a second; on timeout, fail with the tasks' output."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout} s; squeue: {our_jobs()}\n{outputs(sw)}")
        time.sleep(1)


def wait_for_jobs(sw: sweep.SweepDir, timeout: float = WAIT_S) -> None:
    """Until every job the sweep submitted (arrays and gather jobs) has ended."""
    ids = {job for record in sw.read_jobs() for job in (record["array"], record["gather"])}

    def ended():
        return not {job.split("_")[0] for job in our_jobs()} & ids
    wait_until("the sweep's jobs to end", ended, sw, timeout)


def test_slurm_refuses_an_unknown_partition_and_missing_data(slurm_cluster, tmp_path,
                                                             sweep_data, sweep_grid_args,
                                                             capsys):
    folder = tmp_path / "sw"
    argv = ["run", "--sweep-dir", str(folder), "--scheduler", "slurm", *sweep_grid_args]
    assert sweep_main(argv + ["--data-dir", str(sweep_data), "--partition", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "SLURM_PARTITION=gpu: no such partition on this cluster (sinfo lists debug)" in err
    assert sweep_main(argv + ["--data-dir", str(tmp_path / "nodata")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nodata/lmdb/train missing" in err
    assert not folder.exists() and our_jobs() == []


@pytest.mark.slow
def test_a_slurm_sweep_writes_the_local_executors_page(slurm_cluster, tmp_path, sweep_data,
                                                       sweep_grid_args, local_sweep, capsys):
    sw = sweep.SweepDir(tmp_path / "sweep")
    argv = ["run", "--sweep-dir", str(sw.path), "--data-dir", str(sweep_data),
            "--scheduler", "slurm", *sweep_grid_args]
    assert sweep_main(argv) == 0
    out = capsys.readouterr().out
    record = sw.read_jobs()[0]
    assert f"submitted 4 runs as array job {record['array']}" in out
    assert record["cells"] == [0, 1, 2, 3]
    # It returned after submitting: the tasks are still in the queue.
    assert {j.split("_")[0] for j in our_jobs()} >= {record["array"], record["gather"]}
    wait_for_jobs(sw)

    _, cells = sweep.load(sw)
    for cell in cells:
        assert RunDir(cell.run_dir).eval_json.is_file(), outputs(sw)
        result = json.loads(RunDir(cell.run_dir).eval_json.read_text())
        assert result["iteration"] == 12
    gathered = sw.slurm_logs / f"{record['gather']}-gather.out"
    assert f"summary: {sw.page}" in gathered.read_text()
    # Training is bit-reproducible on one machine: the same MCA per run, so the same page.
    local = sweep.SweepDir(local_sweep)
    assert sw.page.read_text() == local.page.read_text()
    assert (json.loads(sw.summary.read_text())["runs"]
            == json.loads(local.summary.read_text())["runs"])
    assert all("finished: MCA" in line for line in sweep_status.lines(sw))

    # The same command again submits nothing and trains nothing.
    logs = [RunDir(c.run_dir).log.read_text() for c in cells]
    assert sweep_main(argv) == 0
    assert "nothing to submit: every run" in capsys.readouterr().out
    assert len(sw.read_jobs()) == 1 and our_jobs() == []
    assert [RunDir(c.run_dir).log.read_text() for c in cells] == logs


@pytest.mark.slow
def test_a_cancelled_task_resumes_from_its_snapshot_and_finished_runs_stay(
        slurm_cluster, tmp_path, sweep_data, capsys):
    # One task at a time (%1): seed-1 finishes while seed-2 waits, then seed-2 trains long
    # enough (snapshots every 4 of 24 iterations, about 1 s each here) to be cancelled a second
    # after its first snapshot, between two snapshots. scancel's SIGTERM reaches every process
    # of the task: Caffe, which starts with it blocked, snapshots on the SIGINT the toolkit
    # passes on, and the task, cancelled, does not requeue itself.
    sw = sweep.SweepDir(tmp_path / "sweep")
    argv = ["run", "--sweep-dir", str(sw.path), "--data-dir", str(sweep_data),
            "--scheduler", "slurm", "--nets", "shallow_inception", "--seeds", "2",
            "--schedule", "short", "--max-iter", "24", "--snapshot", "4", "--max-parallel", "1",
            "--no-progress"]
    assert sweep_main(argv) == 0
    array = sw.read_jobs()[0]["array"]
    _, (first, second) = sweep.load(sw)
    status = sweep_status.lines(sw)
    assert status[1].endswith(f"pending (job {array}_1)")
    assert status[0].endswith(f"(job {array}_0)")          # pending, then running

    def second_has_a_snapshot():
        return RunDir(second.run_dir).newest("solverstate") is not None
    wait_until("the second task's first snapshot", second_has_a_snapshot, sw)
    time.sleep(1)       # Caffe writes the .caffemodel, then the .solverstate: let it finish
    status = sweep_status.lines(sw)
    assert "finished: MCA" in status[0]
    assert "running at iteration" in status[1] and status[1].endswith(f"(job {array}_1)")
    subprocess.run(["scancel", f"{array}_1"], check=True)
    wait_for_jobs(sw)

    snapshot = RunDir(second.run_dir).newest("solverstate")
    stopped = RunDir(second.run_dir).read_manifest()["sessions"][-1]
    assert stopped["outcome"] == "interrupted" and stopped["last_iteration"] == int(
        snapshot.stem.rsplit("_", 1)[1])
    assert not json.loads(sw.summary.read_text())["runs"][1]["finished"]     # the first gather
    assert "'make sweep' again resumes it" in sweep_status.lines(sw)[1]
    log_of_first = RunDir(first.run_dir).log.read_text()

    capsys.readouterr()
    assert sweep_main(argv) == 0
    again = sw.read_jobs()[1]
    assert again["cells"] == [1] and f"submitted 1 runs as array job {again['array']}" in (
        capsys.readouterr().out)
    wait_for_jobs(sw)
    assert RunDir(first.run_dir).log.read_text() == log_of_first
    run = RunDir(second.run_dir)
    sessions = run.read_manifest()["sessions"]
    assert sessions[-1]["resumed_from"] == str(snapshot.relative_to(run.path))
    assert sessions[-1]["outcome"] == "finished"
    assert f"-snapshot={snapshot.relative_to(run.path)}" in run.log.read_text()
    assert json.loads(run.eval_json.read_text())["iteration"] == 24
    assert all("finished: MCA" in line for line in sweep_status.lines(sw))
    assert "2 of 2 runs finished" in sw.page.read_text()
