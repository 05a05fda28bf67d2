"""Bytes each rank actually holds for weights, gradients and optimizer state, next to what the
planner's memory model says for the same layout (``plan.memory.stage_memory``, fp32 state).

``probe_layouts`` runs under torchrun (``run_distributed_test``): per layout it builds the
DistributedTrainer, takes one optimizer step (so AdamW's state exists), runs one more
forward/backward (so gradients exist) and sums the local shards' bytes (DTensor
``to_local()``; a tied weight counted once). Rank r writes ``out/NAME/rank{r}.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from scalinglab.io import atomic_write_json


def _bytes(t: torch.Tensor | None) -> int:
    if t is None:
        return 0
    local = t.to_local() if isinstance(t, DTensor) else t
    return local.numel() * local.element_size()


def measure(trainer) -> dict[str, int]:
    """Local bytes of weights, gradients and optimizer state of a trainer mid-step."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    x, y = trainer.train_data.batch(0, trainer.local_batch)
    trainer.train_step()
    if trainer.schedule is not None:
        trainer._pipeline_step(x, y)
    else:
        trainer._accumulate(x, y)
    params = list(trainer.model.parameters())
    opt = trainer.optimizer
    opt = opt.optim if isinstance(opt, ZeroRedundancyOptimizer) else opt
    state = sum(_bytes(v) for s in opt.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0)  # not the step counters
    return {"weights": sum(_bytes(p) for p in params),
            "gradients": sum(_bytes(p.grad) for p in params), "optimizer": state,
            "pp_rank": trainer.mesh["pp"].get_local_rank()}


def probe_layouts(base_config: str, runs: dict[str, list[str]], out_root: str) -> None:
    """Measure ``base_config`` under each named list of overrides (see module docstring)."""
    from scalinglab.parallel.trainer import DistributedTrainer
    from scalinglab.train.config import TrainConfig

    base = TrainConfig.from_file(base_config)
    for name, overrides in runs.items():
        out = Path(out_root) / name
        cfg = base.merge([*overrides, f"out={out}"])
        trainer = DistributedTrainer(cfg, callbacks=[], progress=False)
        try:
            row = measure(trainer)
        finally:
            trainer.close()
        atomic_write_json(out / f"rank{dist.get_rank()}.json", row)
        dist.barrier()


def compare(root: str | Path, runs: dict[str, list[str]], world_size: int) -> list[dict]:
    """One row per layout and rank: measured bytes, planned bytes, their ratio."""
    from scalinglab.plan.layout import from_parallel
    from scalinglab.plan.memory import FP32_STATE, stage_memory
    from scalinglab.train.config import TrainConfig
    from scalinglab.train.trainer import plan_run

    rows = []
    for name, overrides in runs.items():
        cfg = TrainConfig.from_file(Path(root) / "base.json").merge(overrides)
        plan = plan_run(cfg)
        layout = from_parallel(cfg.parallel, world_size, plan.batch_seqs,
                               cfg.micro_batch_size or plan.batch_seqs)
        for rank in range(world_size):
            got = json.loads((Path(root) / name / f"rank{rank}.json").read_text())
            first, last = got["pp_rank"] == 0, got["pp_rank"] == layout.pp - 1
            want = stage_memory(cfg.model, layout, plan.seq_len, first, last, FP32_STATE)
            for part in ("weights", "gradients", "optimizer"):
                rows.append({"layout": name, "label": layout.describe(), "rank": rank,
                             "part": part, "measured": got[part],
                             "planned": getattr(want, part),
                             "ratio": got[part] / getattr(want, part)})
    return rows
