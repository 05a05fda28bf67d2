"""Pipeline parallelism with ``torch.distributed.pipelining``: stages and schedules.

The model is cut into ``pp * stages_per_rank`` stages of consecutive blocks. Stage 0 keeps
the embeddings, the last stage the final norm and the output layer; every stage keeps the
parameter names of the full model (layers are a ModuleDict keyed by the global index), so a
checkpoint does not depend on the pipeline layout. Rank ``r`` of the ``pp`` axis holds stages
``r, r + pp, r + 2 pp, ...`` (the looped order interleaved 1F1B expects).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.pipelining import (
    PipelineStage,
    Schedule1F1B,
    ScheduleGPipe,
    ScheduleInterleaved1F1B,
)

from scalinglab.layout.config import PPSchedule


def stage_ids(pp_rank: int, pp: int, stages_per_rank: int) -> list[int]:
    """Indices of the stages that pipeline rank ``pp_rank`` runs (looped assignment)."""
    return [pp_rank + k * pp for k in range(stages_per_rank)]


def split_stage(model: nn.Module, stage: int, num_stages: int) -> nn.Module:
    """A copy of ``model`` (normally still on ``meta``) holding only stage ``stage``'s part."""
    part = copy.deepcopy(model)
    n = len(part.layers)
    per = n // num_stages
    keep = {str(i) for i in range(stage * per, (stage + 1) * per)}
    for name in list(part.layers.keys()):
        if name not in keep:
            del part.layers[name]
    if stage > 0:
        part.tok_embeddings = None
        part.input_positions = None
    if stage < num_stages - 1:
        part.norm = None
        part.output = None
    return part


def build_schedule(parts: list[nn.Module], ids: list[int], num_stages: int,
                   pp_mesh: DeviceMesh, device: torch.device, n_microbatches: int,
                   loss_fn: Callable, schedule: PPSchedule):
    """Wrap the local stage modules in PipelineStages and build the schedule over them."""
    group = pp_mesh.get_group()
    stages = [PipelineStage(part, i, num_stages, device, group=group)
              for part, i in zip(parts, ids, strict=True)]
    if schedule == PPSchedule.interleaved_1f1b:
        return ScheduleInterleaved1F1B(stages, n_microbatches, loss_fn=loss_fn), stages
    if len(stages) != 1:
        raise ValueError(f"{schedule} runs one stage per rank, got {len(stages)}")
    cls = ScheduleGPipe if schedule == PPSchedule.gpipe else Schedule1F1B
    return cls(stages[0], n_microbatches, loss_fn=loss_fn), stages


class StageView(nn.Module):
    """The local pipeline stages seen as one module with the full model's parameter names.

    The optimiser, gradient clipping, checkpoints and ``init_weights`` all work on this view:
    it shares (does not copy) the stages' modules.
    """

    def __init__(self, parts: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleDict()
        for part in parts:
            for name in ("tok_embeddings", "input_positions", "norm", "output"):
                if getattr(part, name, None) is not None:
                    setattr(self, name, getattr(part, name))
            for key, block in part.layers.items():
                self.layers[key] = block
