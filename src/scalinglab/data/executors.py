"""Where a sharded data stage runs: datatrove's local, Slurm or Ray executors.

``ExecutorConfig`` says which (``inprocess`` is the original one-process pipeline of
``data/pipeline.py``; the others run the stages of ``data/distributed.py``) and with how many
tasks. :func:`build_executor` turns one stage (a list of datatrove pipeline steps) into
datatrove's own executor, so the Slurm array job and the Ray actors are datatrove's launching
code, not ours. :func:`run_stage` runs it on this machine (local) or launches it (Slurm/Ray),
shows tasks done / total and documents/s, and turns a failed task into a one-line
:class:`TaskFailed` naming the task's log file. Each stage's datatrove logging directory
(``completions/``, ``logs/task_NNNNN.log``, ``stats/``) is its resume state: a rerun skips the
tasks whose completion marker exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scalinglab.config import Config, ConfigError
from scalinglab.errors import ScalinglabError


class ExecutorKind(enum.StrEnum):
    inprocess = "inprocess"  # data/pipeline.py: one process (workers only without dedup)
    local = "local"  # datatrove LocalPipelineExecutor: `tasks` tasks, `workers` at a time
    slurm = "slurm"  # datatrove SlurmPipelineExecutor: one sbatch array job per stage
    ray = "ray"  # datatrove RayPipelineExecutor: on an already initialised Ray cluster


class TaskFailed(ScalinglabError):
    """A task of a sharded stage raised; the message names the stage, the task and its log."""


@dataclasses.dataclass
class SlurmConfig(Config):
    """sbatch settings of ``executor=slurm`` (datatrove's ``SlurmPipelineExecutor``)."""

    partition: str = ""
    """Slurm partition (required for ``executor=slurm``)."""
    time: str = "24:00:00"
    """Wall-clock limit per task."""
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2
    qos: str = "normal"
    venv_path: str = ""
    """``source``d in each job (e.g. ``.venv/bin/activate``); empty: the submitting shell's."""
    sbatch_args: dict[str, str] = dataclasses.field(default_factory=dict)
    """Extra ``#SBATCH --key=value`` lines (account, constraint, ...)."""


@dataclasses.dataclass
class RayConfig(Config):
    """Resources of ``executor=ray`` (datatrove's ``RayPipelineExecutor``)."""

    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2


def build_executor(kind: ExecutorKind, pipeline: list, *, tasks: int, workers: int,
                   logging_dir: Path, name: str, slurm: SlurmConfig | None = None,
                   ray: RayConfig | None = None, depends: Any = None):
    """datatrove's executor for one stage (``pipeline``: datatrove steps) of ``tasks`` tasks."""
    if kind == ExecutorKind.local:
        from datatrove.executor import LocalPipelineExecutor

        # spawn-like start: no fork of a driver that holds threads (progress) and locks
        return LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers,
                                     logging_dir=str(logging_dir), start_method="forkserver")
    if kind == ExecutorKind.slurm:
        from datatrove.executor import SlurmPipelineExecutor

        s = slurm or SlurmConfig()
        if not s.partition:
            raise ConfigError("executor=slurm needs slurm.partition=NAME")
        return SlurmPipelineExecutor(
            pipeline, tasks=tasks, workers=workers, time=s.time, partition=s.partition,
            cpus_per_task=s.cpus_per_task, mem_per_cpu_gb=s.mem_per_cpu_gb, qos=s.qos,
            venv_path=s.venv_path or None, sbatch_args=dict(s.sbatch_args),
            job_name=f"scalinglab-{name}", logging_dir=str(logging_dir), depends=depends)
    if kind == ExecutorKind.ray:
        from datatrove.executor.ray import RayPipelineExecutor

        r = ray or RayConfig()
        return RayPipelineExecutor(pipeline, tasks=tasks, workers=workers,
                                   logging_dir=str(logging_dir), depends=depends,
                                   cpus_per_task=r.cpus_per_task, mem_per_cpu_gb=r.mem_per_cpu_gb)
    raise ConfigError(f"executor={kind}: not a sharded executor (local, slurm or ray)")


def completed_tasks(logging_dir: Path) -> set[int]:
    """Ranks with datatrove's completion marker (``completions/NNNNN``)."""
    done = logging_dir / "completions"
    return {int(p.name) for p in done.iterdir() if p.name.isdigit()} if done.is_dir() else set()


def _failure(command: str, stage: str, logging_dir: Path, tasks: int,
             error: BaseException) -> TaskFailed:
    missing = sorted(set(range(tasks)) - completed_tasks(logging_dir))
    logs = [logging_dir / "logs" / f"task_{r:05d}.log" for r in missing]
    failed = [p for p in logs if p.exists() and "ERROR" in p.read_text(errors="replace")]
    first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    where = failed[0] if failed else (logs[0] if logs else logging_dir)
    return TaskFailed(f"{command}: stage {stage}: {len(missing)}/{tasks} task(s) unfinished "
                      f"({first}); log: {where}; completed tasks are kept, rerun to resume")


def run_stage(executor, stage: str, logging_dir: Path, tasks: int, progress: bool,
              docs_done: Callable[[], int] | None = None, command: str = "prepare") -> None:
    """Run a local stage to its end (or launch a Slurm/Ray one), with a progress bar.

    A task that raises stops the stage cleanly: datatrove has already marked the finished
    tasks, the failure becomes one :class:`TaskFailed` line naming the first failed task's log.
    """
    from tqdm import tqdm

    stop = threading.Event()
    console = os.fdopen(os.dup(2), "w")  # the bar keeps the terminal; datatrove's logs do not
    bar = tqdm(total=tasks, unit="task", desc=f"{command} {stage}", disable=not progress,
               file=console, mininterval=1.0)

    def poll() -> None:  # datatrove's markers are the truth about finished tasks
        import time

        start = time.perf_counter()
        while not stop.wait(1.0):
            bar.n = len(completed_tasks(logging_dir))
            if docs_done is not None:
                rate = docs_done() / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix_str(f"{rate:,.0f} docs/s", refresh=False)
            bar.refresh()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        with _stderr_to(logging_dir / "driver.log"):
            executor.run()
    except Exception as e:  # a task's exception, re-raised by datatrove's pool
        raise _failure(command, stage, logging_dir, tasks, e) from None
    finally:
        stop.set()
        thread.join()
        bar.n = len(completed_tasks(logging_dir))
        bar.close()
        console.close()


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (datatrove's console logs, its worker processes' too) to
    ``path`` while the block runs; each task also keeps its own ``logs/task_NNNNN.log``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved, saved_obj = os.dup(2), sys.stderr
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
        sys.stderr = log  # datatrove's logger writes to whatever sys.stderr is at task start
        try:
            yield
        finally:
            sys.stderr = saved_obj
            log.flush()
            os.dup2(saved, 2)
            os.close(saved)
            _reset_datatrove_logger()


def _reset_datatrove_logger() -> None:
    """datatrove's console sink was bound to the log file being closed: bind it to stderr."""
    from datatrove.utils.logging import setup_default_logger

    setup_default_logger()
