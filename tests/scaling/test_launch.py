"""Running sweeps: a killed sweep resumes, finished runs are skipped, a failing run is recorded
and the sweep goes on; study.csv columns; submitit job construction without a cluster."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalinglab.io import LockedError
from scalinglab.scaling import launch
from scalinglab.scaling.launch import run_sweep, submit_slurm
from scalinglab.scaling.study import STUDY_COLUMNS, read_study_csv, run_dir, run_status
from scalinglab.scaling.study_dir import load_plan, plan_study
from scalinglab.scaling.sweep import params_of
from scalinglab.scaling.sweep_config import SlurmConfig, SweepConfig

SRC = str(Path(__file__).resolve().parents[2] / "src")


def tiny_study(shards, study, budgets=(8e9,), sizes=3, width_multiple=16) -> list:
    """A one-budget study of tiny models; five sizes need width_multiple=8 to be distinct
    shapes at this budget (planning refuses sizes that collapse onto one shape)."""
    cfg = SweepConfig().merge({
        "data": str(shards), "seq_len": 32, "isoflop.budgets": list(budgets),
        "isoflop.sizes": sizes, "batch.min_steps": 8, "bracket_rounds": 0,
        "width_multiple": width_multiple,
        "train": ["eval_tokens=1024"],
    })
    return plan_study(study, cfg)


def break_run(study: Path, run_id: str) -> None:
    """Make one planned run impossible to train (its context exceeds its model's)."""
    plan = json.loads((study / "plan.json").read_text())
    for r in plan["runs"]:
        if r["run_id"] == run_id:
            r["train"]["seq_len"] = 4 * r["train"]["model"]["max_seq_len"]
    (study / "plan.json").write_text(json.dumps(plan))


def test_killed_sweep_resumes_skips_finished_and_records_failures(shards, tmp_path):
    study = tmp_path / "study"
    runs = tiny_study(shards, study, sizes=5, width_multiple=8)
    assert len(runs) >= 4
    broken = runs[1].run_id
    break_run(study, broken)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scalinglab", "sweep", "run", str(study),
                             "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(
            (run_dir(study, r.run_id) / "summary.json").exists() for r in runs):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {r.run_id: (run_dir(study, r.run_id) / "summary.json").stat().st_mtime_ns
                for r in runs if run_status(study, r.run_id) == "complete"}
    assert finished, "the sweep finished no run before the kill"
    assert len(finished) < len(runs) - 1, "the sweep finished before it could be killed"

    broken_seen = run_status(study, broken) == "failed"
    outcome = run_sweep(study, workers=2, progress=False)
    assert outcome.trained == len(runs) - len(finished) - broken_seen
    for run_id, mtime in finished.items():  # not retrained
        assert (run_dir(study, run_id) / "summary.json").stat().st_mtime_ns == mtime
    assert outcome.failed == 1 and outcome.complete == len(runs) - 1

    rows = read_study_csv(study / "study.csv")
    with open(study / "study.csv") as f:
        assert f.readline().strip().split(",") == STUDY_COLUMNS
    assert len(rows) == len(runs)
    by_id = {r["run_id"]: r for r in rows}
    assert by_id[broken]["status"] == "failed" and "seq_len" in by_id[broken]["error"]
    for r in rows:
        if r["run_id"] != broken:
            assert r["status"] == "complete" and r["final_val_loss"] > 0
            assert r["flops_chinchilla"] == pytest.approx(r["budget"], rel=0.05)
            assert r["flop_convention"] == "chinchilla" and r["kind"] == "isoflop"

    again = run_sweep(study, progress=False)  # nothing left: the failed run stays failed
    assert again.trained == 0 and again.failed == 1


def test_sweep_brackets_until_interior(shards, tmp_path):
    """When a grid's best run sits on its large edge, `sweep run` plans a larger size, trains
    it, and judges again, until the best run is interior (or bracket_rounds is spent)."""
    study = tmp_path / "study"
    runs = tiny_study(shards, study)
    assert len(runs) == 3
    assert run_sweep(study, bracket=False, progress=False).complete == len(runs)
    # Pretend the largest model won (rewrite its loss) so the large edge holds the minimum.
    largest = max(runs, key=lambda r: params_of(r.model, "total"))
    path = run_dir(study, largest.run_id) / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "final_val_loss": 0.0}))
    sweep = json.loads((study / "sweep.json").read_text())
    sweep["bracket_rounds"] = 1
    (study / "sweep.json").write_text(json.dumps(sweep))

    outcome = run_sweep(study, progress=False)
    assert outcome.added and outcome.trained == len(outcome.added)
    new = next(r for r in load_plan(study) if r.run_id == outcome.added[0])
    assert params_of(new.model, "total") > params_of(largest.model, "total")
    assert new.budget == largest.budget and run_status(study, new.run_id) == "complete"
    rows = read_study_csv(study / "study.csv")
    assert len(rows) == len(runs) + len(outcome.added)


def _fake_slurm_bin(tmp_path: Path) -> Path:
    """srun / sbatch stand-ins: sbatch keeps the submitted script and answers like Slurm."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "sbatch").write_text(
        f"#!/bin/sh\ncp \"$1\" {tmp_path}/submitted.sh\necho 'Submitted batch job 4242'\n")
    for f in bindir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return bindir


def test_submitit_job_array_construction(shards, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    study = tmp_path / "study"
    runs = tiny_study(shards, study)
    monkeypatch.setenv("PATH", f"{_fake_slurm_bin(tmp_path)}:{os.environ['PATH']}")
    cfg = SlurmConfig(partition="gpu", timeout_min=30, cpus_per_task=4, gpus_per_node=1,
                      mem_gb=16, array_parallelism=2, setup=["source .venv/bin/activate"])
    jobs = submit_slurm(study, load_plan(study), cfg)
    assert [j.job_id for j in jobs] == [f"4242_{i}" for i in range(len(runs))]
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --mem=16GB",
                 f"#SBATCH --array=0-{len(runs) - 1}%2", "#SBATCH --job-name=scalinglab-sweep",
                 "source .venv/bin/activate", "submitit.core._submit"):
        assert line in script, line
    # each array task carries one run's pickled TrainConfig
    pickles = list((study / "slurm").rglob("*_submitted.pkl"))
    assert len(pickles) == len(runs)


def test_submitit_debug_executor_runs_and_records(shards, tmp_path):
    pytest.importorskip("submitit")
    study = tmp_path / "study"
    runs = tiny_study(shards, study)
    break_run(study, runs[0].run_id)
    sweep = json.loads((study / "sweep.json").read_text())
    sweep["slurm"]["cluster"] = "debug"
    (study / "sweep.json").write_text(json.dumps(sweep))
    outcome = run_sweep(study, launcher="slurm", progress=False)
    assert outcome.complete == len(runs) - 1 and outcome.failed == 1
    assert (run_dir(study, runs[0].run_id) / "error.json").exists()


# ---------------------------------------------------------------------- two writers, crashes


def test_a_locked_study_is_refused(shards, tmp_path, lock_holder):
    study = tmp_path / "study"
    tiny_study(shards, study)
    pid = lock_holder(study)
    with pytest.raises(LockedError, match=f"process {pid}"):
        run_sweep(study, progress=False)


def test_a_run_trained_elsewhere_is_left_pending_not_trained_twice(shards, tmp_path,
                                                                   lock_holder):
    """A rerun after a crash must not train a run that a surviving process still trains."""
    study = tmp_path / "study"
    runs = tiny_study(shards, study)
    busy = runs[0].run_id
    lock_holder(run_dir(study, busy))
    outcome = run_sweep(study, progress=False)
    assert outcome.busy == [busy] and outcome.failed == 0
    assert outcome.complete == len(runs) - 1
    assert run_status(study, busy) == "pending"
    assert not (run_dir(study, busy) / "error.json").exists()
    assert not (run_dir(study, busy) / "config.json").exists()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _pool_workers(parent: int) -> set[int]:
    """PIDs of the multiprocessing (spawn) workers whose parent is ``parent``."""
    found = set()
    for proc_stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            ppid = int(proc_stat.read_text().split(")")[-1].split()[1])
            cmdline = (proc_stat.parent / "cmdline").read_bytes()
            if ppid == parent and b"spawn_main" in cmdline:
                found.add(int(proc_stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkilled_sweep_takes_its_workers_with_it(shards, tmp_path):
    study = tmp_path / "study"
    runs = tiny_study(shards, study, budgets=(2e11,))  # runs of several seconds each
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scalinglab", "sweep", "run", str(study),
                             "--workers", "2", "--quiet", "--no-bracket"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    training = []
    while len(training) < 2 and time.time() < deadline and proc.poll() is None:
        training = [r for r in runs if (run_dir(study, r.run_id) / "metrics.jsonl").exists()]
        time.sleep(0.05)
    workers = _pool_workers(proc.pid)
    assert len(training) == 2 and len(workers) == 2, "the workers did not start training"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    alive = [w for w in workers if _alive(w)]
    for w in alive:  # do not leave them running whatever the outcome
        os.kill(w, signal.SIGKILL)
    assert not alive, "workers trained on after their sweep was killed"
    assert not any((run_dir(study, r.run_id) / "summary.json").exists() for r in runs)


def test_failure_handler_survives_a_full_disk(shards, tmp_path, monkeypatch, capsys):
    """The run fails, and writing its error.json fails too: the sweep goes on."""
    study = tmp_path / "study"
    runs = tiny_study(shards, study)
    break_run(study, runs[0].run_id)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(launch, "atomic_write_json", full)
    spec = load_plan(study)[0]
    result = launch.execute_run(spec.train_config(study).as_dict())
    assert result["status"] == "failed" and "seq_len" in result["error"]
    launch.record_failure(study, runs[1].run_id, "worker died")
    err = capsys.readouterr().err
    assert "error.json" in err and "No space left on device" in err
