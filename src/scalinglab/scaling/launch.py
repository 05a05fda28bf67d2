"""Running a study's pending runs: local processes or Slurm (through submitit).

Every run goes through ``execute_run``, which trains (or resumes) it with the trainer's Python
API and turns an exception into ``error.json`` in the run directory, so one broken run never
stops the sweep. Runs with ``summary.json`` are skipped; a sweep killed mid-run leaves that run
pending and its checkpoints let it resume. The study is locked while a sweep runs it, each run
directory while it trains (a run another process trains is left pending, never trained twice
at once), and worker processes die with the sweep that started them, even on SIGKILL.
``run_sweep`` alternates running and adaptive bracketing until every IsoFLOP grid has an
interior minimum (or ``bracket_rounds`` is spent).
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm import tqdm

from scalinglab.config import ConfigError
from scalinglab.errors import ScalinglabError
from scalinglab.io import LockedError, atomic_write_json, locked
from scalinglab.scaling.study import (
    bracket_warnings,
    divergence,
    extend_brackets,
    run_dir,
    run_status,
    write_study_csv,
)
from scalinglab.scaling.study_dir import load_plan, load_sweep_config
from scalinglab.scaling.sweep_config import RunSpec, SlurmConfig, SweepConfig

LAUNCHERS = ("local", "slurm")


def execute_run(train_cfg: dict[str, Any], threads: int = 0,
                progress: bool = False) -> dict[str, Any]:
    """Train one run from its TrainConfig dict; a failure is written to ``error.json``.

    Top-level and fed plain data so that it pickles for worker processes and Slurm jobs.
    Returns ``{"status": "complete", **summary}`` or ``{"status": "failed", "error": ...}``
    (a diverged run is failed: its summary.json says why and at which step).
    """
    import torch  # imported here so planning and the CLI stay light

    from scalinglab.train.config import TrainConfig
    from scalinglab.train.trainer import train

    out = Path(train_cfg["out"])
    if threads:
        torch.set_num_threads(threads)
    try:
        summary = train(TrainConfig.from_dict(train_cfg), progress=progress)
    except LockedError as e:  # another process trains this run: not a failure, not ours
        return {"status": "busy", "error": str(e), "run": out.name}
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, not raised
        message = f"{type(e).__name__}: {e}"
        _write_error(out, {"error": message, "traceback": traceback.format_exc()})
        return {"status": "failed", "error": message}
    (out / "error.json").unlink(missing_ok=True)
    if summary.get("status") == "diverged":
        return {**summary, "status": "failed", "error": divergence(out)}
    return {**summary, "status": "complete"}


def _write_error(out: Path, payload: dict[str, Any]) -> None:
    """Write ``error.json``; when that fails too (the disk that failed the run is full), say
    so in one line instead of crashing the sweep's failure handler."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "error.json", payload)
    except (OSError, ScalinglabError) as e:
        print(f"warning: {out / 'error.json'}: cannot record the failure ({e}); "
              f"the run failed with: {payload['error']}", file=sys.stderr)


def record_failure(study: str | Path, run_id: str, message: str) -> None:
    """error.json for a run that died outside ``execute_run`` (a killed worker or job)."""
    d = run_dir(study, run_id)
    if not (d / "summary.json").exists() and not (d / "error.json").exists():
        _write_error(d, {"error": message})


def pending_runs(study: str | Path, retry_failed: bool = False) -> list[RunSpec]:
    """Planned runs that still need training (failed ones too when ``retry_failed``)."""
    todo = []
    for spec in load_plan(study):
        status = run_status(study, spec.run_id)
        if status == "failed" and retry_failed:
            # A diverged run stays failed: the same config diverges the same way again.
            (run_dir(study, spec.run_id) / "error.json").unlink(missing_ok=True)
            status = run_status(study, spec.run_id)
        if status == "pending":
            todo.append(spec)
    return todo


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Worker initializer: a sweep killed with SIGKILL runs no cleanup, so its workers must
    notice on their own, or they train on (and a rerun would train the same runs again)."""
    if not _set_parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


# ---------------------------------------------------------------------- launchers


class _Bar:
    """The sweep's progress over runs: finished / total, failures, the last loss."""

    def __init__(self, total: int, enabled: bool):
        self.bar = tqdm(total=total, unit="run", desc="sweep", disable=not enabled,
                        dynamic_ncols=True, position=0)
        self.failed = 0

    def done(self, spec: RunSpec, result: dict[str, Any]) -> None:
        if result.get("status") not in ("complete", "busy"):  # busy: trained elsewhere
            self.failed += 1
        loss = result.get("final_val_loss")
        post = {"last": spec.run_id, "failed": self.failed}
        if loss is not None:
            post["val"] = f"{loss:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_local(study: str | Path, specs: list[RunSpec], workers: int = 1,
              progress: bool = True, on_done: Callable | None = None) -> list[dict[str, Any]]:
    """Train ``specs`` in this process (workers=1) or in a pool of worker processes."""
    if not specs:
        return []
    import torch

    # An equal share of the cores, but never more than torch would use (OMP_NUM_THREADS):
    # tiny models slow down when their threads contend.
    threads = max(1, min(torch.get_num_threads(), available_cpus() // max(1, workers)))
    trains = [s.train_config(study).as_dict() for s in specs]
    bar, results = _Bar(len(specs), progress), []
    try:
        if workers <= 1:
            for spec, cfg in zip(specs, trains, strict=True):
                results.append(execute_run(cfg, threads, progress))
                bar.done(spec, results[-1])
                if on_done:
                    on_done(spec, results[-1])
            return results
        ctx = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(execute_run, cfg, threads): spec
                       for spec, cfg in zip(specs, trains, strict=True)}
            for fut in as_completed(futures):
                spec = futures[fut]
                try:
                    result = fut.result()
                except Exception as e:  # noqa: BLE001 - a crashed worker fails only its run
                    result = {"status": "failed", "error": f"worker died: {e}"}
                    record_failure(study, spec.run_id, result["error"])
                results.append(result)
                bar.done(spec, result)
                if on_done:
                    on_done(spec, result)
    finally:
        bar.close()
    return results


def slurm_executor(study: str | Path, cfg: SlurmConfig, name: str = "scalinglab-sweep"):
    """A submitit AutoExecutor configured from ``cfg``; logs go to ``STUDY/slurm/``."""
    try:
        import submitit
    except ImportError:
        raise ScalinglabError(
            "the slurm launcher needs submitit: pip install 'scalinglab[slurm]'"
        ) from None
    try:
        executor = submitit.AutoExecutor(folder=Path(study) / "slurm" / "%j", cluster=cfg.cluster)
    except (RuntimeError, ValueError) as e:
        raise ScalinglabError(f"submitit cannot use cluster {cfg.cluster!r}: {e}") from None
    params: dict[str, Any] = {"name": name, "timeout_min": cfg.timeout_min,
                              "cpus_per_task": cfg.cpus_per_task,
                              "slurm_array_parallelism": cfg.array_parallelism}
    if cfg.gpus_per_node:
        params["gpus_per_node"] = cfg.gpus_per_node
    if cfg.mem_gb:
        params["mem_gb"] = cfg.mem_gb
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.setup:
        params["slurm_setup"] = list(cfg.setup)
    executor.update_parameters(**params)
    return executor


def submit_slurm(study: str | Path, specs: list[RunSpec], cfg: SlurmConfig) -> list[Any]:
    """Submit ``specs`` as one job array; returns the submitit jobs (in ``specs`` order)."""
    executor = slurm_executor(study, cfg)
    trains = [s.train_config(study).as_dict() for s in specs]
    threads = [cfg.cpus_per_task] * len(specs)
    return executor.map_array(execute_run, trains, threads)


def run_slurm(study: str | Path, specs: list[RunSpec], cfg: SlurmConfig,
              progress: bool = True) -> list[dict[str, Any]]:
    """Submit ``specs`` and wait; a job that dies (timeout, node failure) is recorded."""
    if not specs:
        return []
    import submitit

    jobs = submit_slurm(study, specs, cfg)
    spec_of = {id(job): spec for job, spec in zip(jobs, specs, strict=True)}
    bar, results = _Bar(len(specs), progress), []
    try:
        for job in submitit.helpers.as_completed(jobs):
            spec = spec_of[id(job)]
            try:
                result = job.result()
            except Exception as e:  # noqa: BLE001 - the job's failure is this run's failure
                result = {"status": "failed", "error": f"slurm job {job.job_id}: {e}"}
                record_failure(study, spec.run_id, result["error"])
            results.append(result)
            bar.done(spec, result)
    finally:
        bar.close()
    return results


# ---------------------------------------------------------------------- the sweep


@dataclasses.dataclass
class SweepOutcome:
    complete: int = 0
    failed: int = 0
    trained: int = 0
    """Runs trained (or resumed) by this call."""
    added: list[str] = dataclasses.field(default_factory=list)
    """Run ids added by adaptive bracketing."""
    busy: list[str] = dataclasses.field(default_factory=list)
    """Run ids left pending because another process is training them."""
    warnings: list[str] = dataclasses.field(default_factory=list)
    """One line per IsoFLOP budget whose minimum is still at its smallest or largest shape."""


def run_sweep(study: str | Path, workers: int = 1, launcher: str = "local",
              retry_failed: bool = False, bracket: bool = True,
              progress: bool = True) -> SweepOutcome:
    """Run every pending run; then extend edge-minimum IsoFLOP grids and run those too.

    ``study.csv`` is rewritten after every finished run, so it is current even if the sweep is
    killed.
    """
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher must be one of {LAUNCHERS}, got {launcher!r}")
    cfg = load_sweep_config(study)
    with locked(study, "a study being run"):
        return _sweep(study, cfg, workers, launcher, retry_failed, bracket, progress)


def _sweep(study: str | Path, cfg: SweepConfig, workers: int, launcher: str,
           retry_failed: bool, bracket: bool, progress: bool) -> SweepOutcome:
    """The rounds of ``run_sweep``, with the study locked."""
    outcome = SweepOutcome()
    specs = pending_runs(study, retry_failed)
    for round_ in range(cfg.bracket_rounds + 1):
        if launcher == "slurm":
            results = run_slurm(study, specs, cfg.slurm, progress)
        else:
            results = run_local(study, specs, workers, progress,
                                on_done=lambda *_: write_study_csv(study))
        outcome.trained += sum(r.get("status") != "busy" for r in results)
        outcome.busy += [r["run"] for r in results if r.get("status") == "busy"]
        write_study_csv(study)
        if not bracket or round_ == cfg.bracket_rounds:
            break
        specs = extend_brackets(study)
        outcome.added += [s.run_id for s in specs]
        if not specs:
            break
    statuses = [run_status(study, s.run_id) for s in load_plan(study)]
    outcome.complete, outcome.failed = statuses.count("complete"), statuses.count("failed")
    outcome.warnings = bracket_warnings(study)
    return outcome
