"""Activation checkpointing of a model's blocks, for the single-process and the distributed
trainer alike (``parallel.activation_checkpoint``).

``full`` keeps each block's input and reruns its forward in backward; ``selective`` keeps
the matmul outputs and recomputes the rest (the per-op mode of torchtitan; Korthikanti et
al. 2022). Either trades compute for activation memory and leaves the numbers unchanged.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import (
    CheckpointPolicy,
    checkpoint,
    create_selective_checkpoint_contexts,
)

from scalinglab.layout.config import ACMode

# Ops whose outputs selective checkpointing keeps: the matmuls (the expensive part of a
# block). Everything else -- attention scores and softmax, norms, activations -- is cheap to
# recompute and is what Korthikanti et al. (2022) and torchtitan's per-op mode drop.
# The tensor-parallel collectives' outputs are kept too, so backward never repeats them.
_SAVED_OPS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
              torch.ops.aten.bmm.default, torch.ops.aten.linear.default,
              torch.ops._c10d_functional.all_gather_into_tensor.default,
              torch.ops._c10d_functional.reduce_scatter_tensor.default,
              torch.ops._c10d_functional.all_reduce.default}


def _selective_policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in _SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def apply_ac(model: nn.Module, mode: ACMode | str = ACMode.full) -> None:
    """Activation checkpointing of every block: ``full`` recomputes the whole block in
    backward, ``selective`` only its non-matmul ops. Replaces the block's ``forward`` on the
    instance (instead of wrapping the module) so parameter names, hence checkpoints, do not
    change."""
    mode = ACMode(mode)
    if mode == ACMode.none:
        return
    kwargs: dict = {"use_reentrant": False}
    if mode == ACMode.selective:
        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts,
                                                 _selective_policy)
    for block in model.layers.values():
        block.forward = functools.partial(checkpoint, block.forward, **kwargs)
