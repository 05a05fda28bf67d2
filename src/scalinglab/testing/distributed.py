"""Helpers for multi-process tests: launch real ``torchrun --standalone`` jobs (gloo, CPU).

``run_distributed_test("pkg.module:function", world_size, *args)`` runs ``function(*args)``
on every rank of a fresh torchrun job (``args`` travel as JSON) and raises with the output
tail if any rank fails. ``train_modes`` is such a function: it trains one run per named
layout in one job, so the process start-up (~3 s of imports per torchrun) is paid once.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2]
ROOT = SRC.parent  # the checkout: workers may live in ``tests.*`` modules


class DistributedTestError(RuntimeError):
    """A torchrun job failed; the message carries the tail of its output."""


def torchrun(args: list[str], world_size: int, timeout: float = 300.0,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc-per-node world_size ARGS`` with one thread per
    process; raise DistributedTestError (with the output tail) unless every rank succeeds."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={world_size}", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), str(ROOT),
                                                            os.environ.get("PYTHONPATH")])),
                **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=ROOT)
    if proc.returncode != 0:
        out = proc.stdout + proc.stderr
        ranks = [line for line in out.splitlines() if line.startswith("[rank")][-30:]
        raise DistributedTestError(f"torchrun exited {proc.returncode}:\n{out[-3000:]}\n"
                                   "--- last rank lines:\n" + "\n".join(ranks))
    return proc


def run_distributed_test(target: str, world_size: int = 2, *args: Any,
                         timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run ``module:function(*args)`` on ``world_size`` gloo ranks under torchrun."""
    return torchrun(["-m", "scalinglab.testing.distributed", target, json.dumps(list(args))],
                    world_size, timeout=timeout)


def train_modes(base_config: str, runs: dict[str, list[str]], out_root: str) -> None:
    """Train ``base_config`` once per entry of ``runs`` (name -> dotlist overrides, e.g.
    ``["parallel.fsdp=2"]``) into ``out_root/name``, all in the current torchrun job."""
    from scalinglab.parallel.trainer import train_distributed
    from scalinglab.train.config import TrainConfig

    base = TrainConfig.from_file(base_config)
    for name, overrides in runs.items():
        cfg = base.merge([*overrides, f"out={Path(out_root) / name}"])
        train_distributed(cfg, progress=False, shutdown=False)
        gc.collect()


def _main(argv: list[str]) -> int:
    """Entry point on every rank: join the job, call the target, leave cleanly."""
    import torch.distributed as dist

    from scalinglab.parallel.dims import init_process_group

    target, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else []
    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)
    init_process_group(timeout_s=120)
    try:
        fn(*args)
    finally:
        gc.collect()  # release DTensors / stages before the group goes (gloo aborts otherwise)
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
