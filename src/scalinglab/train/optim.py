"""AdamW with the papers' settings and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from scalinglab.train.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Matrices decay; norms, biases and the relative-attention u/v vectors do not."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        (no_decay if p.ndim < 2 or leaf in ("u", "v") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig, **kwargs) -> torch.optim.AdamW:
    """AdamW (beta2 0.95, decay 0.1 by default). ``kwargs`` pass through (e.g. foreach).

    By default the fused kernel (one pass per tensor, CPU or CUDA) is used: it removes the
    per-step cost of AdamW's half-dozen elementwise ops per tensor. Pass ``foreach=True``
    (or ``fused=False``) where fused is not supported.
    """
    if "foreach" not in kwargs:
        kwargs.setdefault("fused", True)
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps, **kwargs,
    )


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio x peak at the last step.

    The cosine spans exactly the planned steps: Chinchilla found that a cosine cycle longer
    than the run overstates the loss of intermediate points.
    """
    warmup = max(1, round(cfg.warmup_fraction * total_steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup - 1)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)
