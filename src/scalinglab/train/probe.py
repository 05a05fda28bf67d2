"""A short measured probe for ``train --dry-run``: a few real optimiser steps (and one
evaluation) of the run's own model on its own device and data, timed, with nothing written
to disk, turned into an estimate of the run's wall time."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from scalinglab.train.config import TrainConfig

PROBE_STEPS = 3
"""Timed steps (after one untimed warm-up step: allocation, compilation, caches)."""
MAX_PROBE_S = 60.0
"""A step that would take longer than this even at full device speed is not probed."""


def probe_refusal(cfg: TrainConfig) -> str | None:
    """Why the probe would not fit here (a dry run of a 175B preset must not try to build it
    in CPU memory), or None. Memory: weights, gradients and AdamW's two moments in fp32."""
    import os

    from scalinglab.model.accounting import FlopConvention, count_params, train_flops_per_token
    from scalinglab.train.trainer import plan_run, resolve_device
    from scalinglab.utils.hardware import peak_flops

    device = resolve_device(cfg.device)
    need = 16 * count_params(cfg.model).total
    if device.type == "cuda":
        import torch

        have = torch.cuda.mem_get_info(device)[0]
    else:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    if need > have:
        return f"needs about {need / 2**30:.1f} GiB for the model and optimiser, " \
               f"{have / 2**30:.1f} GiB free"
    plan = plan_run(cfg)
    flops = plan.tokens_per_step * train_flops_per_token(cfg.model, FlopConvention.chinchilla,
                                                         plan.seq_len)
    fastest = flops / (cfg.peak_flops or peak_flops(device, cfg.dtype))
    if fastest > MAX_PROBE_S:
        return f"one step takes at least {fastest:.0f} s on {device}"
    return None


def probe_wall_time(cfg: TrainConfig, steps: int = PROBE_STEPS) -> dict[str, Any]:
    """Time ``steps`` training steps and one evaluation; estimate the whole run's wall time.

    The trainer is built without callbacks and ``fit`` is never called, so the run
    directory is neither locked nor created (``out`` need not be set).
    """
    from scalinglab.train.trainer import Trainer  # torch: only when probing

    trainer = Trainer(dataclasses.replace(cfg, out=cfg.out or "dry-run-probe"), callbacks=[],
                      progress=False)
    trainer.train_step()  # warm-up, untimed
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    step_s = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    trainer.evaluate()
    eval_s = time.perf_counter() - start
    total = trainer.plan.steps
    # EvalCallback: every eval_every steps and at the last step
    evals = total // trainer.eval_every + (total % trainer.eval_every != 0)
    return {"estimate": True, "probe_steps": steps, "step_s": step_s, "eval_s": eval_s,
            "steps": total, "evals": evals, "device": str(trainer.device),
            "wall_s": total * step_s + evals * eval_s}


def estimate_line(est: dict[str, Any]) -> str:
    from scalinglab.train.callbacks import format_duration

    return (f"expected wall time: about {format_duration(est['wall_s'])} (an estimate from "
            f"{est['probe_steps']} measured steps of {est['step_s']:.3g} s on "
            f"{est['device']}: {est['steps']} steps + {est['evals']} evaluations of "
            f"{est['eval_s']:.3g} s; checkpoints and other load not included)")
