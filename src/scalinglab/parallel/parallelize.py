"""Build a model for a layout: meta -> TP -> activation checkpointing -> compile -> FSDP.

The order matters (as in torchtitan): tensor parallelism rewrites the Linear weights into
DTensors first; activation checkpointing and ``compile`` wrap the blocks' forward; FSDP2 then
shards whatever parameters it finds (already TP-sharded ones on a 2-D mesh). The model is
built on ``meta`` so that no rank ever holds the full unsharded weights, then materialised
on the device and initialised with ``init_weights(seed)``, which gives every layout the same
weights as a single-process run with that seed.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

from scalinglab.layout.config import ParallelConfig
from scalinglab.model.config import ModelConfig
from scalinglab.model.transformer import Transformer
from scalinglab.parallel.dims import ParallelDims
from scalinglab.parallel.fsdp import apply_ddp, apply_fsdp, mixed_precision
from scalinglab.parallel.pp import StageView, split_stage, stage_ids
from scalinglab.parallel.tp import apply_tp
from scalinglab.train.activation_checkpoint import apply_ac


@dataclasses.dataclass
class ParallelModel:
    """What a rank trains: its module parts and a view with the full model's names.

    Attributes:
        parts: the modules this rank runs: the whole (sharded) model, or its pipeline stages.
        stage_ids: pipeline stage index of each part ([0] without pipelining).
        model: parameters and state dict under the full model's names (the model itself, or
            a StageView of the parts); optimiser, clipping and checkpoints use it.
        forward: what to call for logits without pipelining (the DDP wrapper under DDP).
    """

    parts: list[nn.Module]
    stage_ids: list[int]
    model: nn.Module
    forward: nn.Module


def parallelize(cfg: ModelConfig, pcfg: ParallelConfig, dims: ParallelDims, mesh: DeviceMesh,
                device: torch.device, *, seed: int, dtype: str, compile: bool) -> ParallelModel:
    """Build, shard and initialise this rank's part of the model (see module docstring)."""
    with torch.device("meta"):
        full = Transformer(cfg)
    pp_rank = mesh["pp"].get_local_rank()
    ids = stage_ids(pp_rank, dims.pp, pcfg.stages_per_rank) if dims.pp > 1 else [0]
    num_stages = dims.pp * pcfg.stages_per_rank if dims.pp > 1 else 1
    parts = [split_stage(full, i, num_stages) for i in ids] if dims.pp > 1 else [full]
    fsdp_on = dims.uses_fsdp
    for part in parts:
        if dims.tp > 1:
            apply_tp(part, mesh["tp"], loss_parallel=pcfg.loss_parallel and dims.pp == 1)
        apply_ac(part, pcfg.activation_checkpoint)
        if compile:
            for block in part.layers.values():
                block.compile()  # in place: parameter names stay as they are
        if fsdp_on:
            dp_mesh = mesh["dp", "fsdp"] if dims.dp > 1 else mesh["fsdp"]
            apply_fsdp(part, dp_mesh, pcfg.reshard_after_forward,
                       mixed_precision(dtype, device.type))
    for part in parts:
        part.to_empty(device=device)
        if not fsdp_on:
            _retie(part)
    view = parts[0] if dims.pp == 1 else StageView(parts)
    init_weights(view, cfg, seed)
    forward = parts[0]
    if dims.dp > 1 and not fsdp_on:
        forward = apply_ddp(parts[0], mesh["dp"])
    return ParallelModel(parts, ids, view, forward)


def _retie(part: nn.Module) -> None:
    """``to_empty`` gives each module its own new tensor, untying shared weights; tie them
    again (FSDP2 keeps a shared parameter as one sharded parameter, so it needs nothing)."""
    if part.config.tie_embeddings and part.tok_embeddings is not None and part.output is not None:
        part.output.weight = part.tok_embeddings.weight


@torch.no_grad()
def init_weights(view: nn.Module, cfg: ModelConfig, seed: int) -> None:
    """Initialise ``view``'s (possibly sharded, possibly partial) parameters exactly as
    ``Transformer(cfg).init_weights(seed)`` would initialise the same names.

    ``init_weights`` draws every tensor from one generator in parameter order, so a pipeline
    stage cannot simply call it on itself. Instead a full model on ``meta`` borrows this
    rank's parameters under their names and runs the model's own ``init_weights``: present
    parameters get their values, absent ones only advance the generator.
    """
    if isinstance(view, Transformer):
        view.init_weights(seed)
        return
    with torch.device("meta"):
        full = Transformer(cfg)
    for name, param in view.named_parameters():
        owner_name, _, leaf = name.rpartition(".")
        setattr(full.get_submodule(owner_name), leaf, param)
    if cfg.tie_embeddings:
        full.output.weight = full.tok_embeddings.weight
    full.init_weights(seed)
