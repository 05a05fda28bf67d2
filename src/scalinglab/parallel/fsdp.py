"""Data parallelism: FSDP2 ``fully_shard`` per block (ZeRO-3, or ZeRO-2-like), or DDP."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard


def mixed_precision(dtype: str, device_type: str) -> MixedPrecisionPolicy:
    """bf16 parameters with fp32 gradient reduction on GPU; plain fp32 otherwise."""
    if dtype == "bf16" and device_type == "cuda":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def apply_fsdp(model: nn.Module, dp_mesh: DeviceMesh, reshard_after_forward: bool,
               mp_policy: MixedPrecisionPolicy) -> None:
    """Shard every block, then the root (embeddings, final norm, output), over ``dp_mesh``.

    ``dp_mesh`` is 1-D (``fsdp``: ZeRO-3 over all data ranks) or 2-D (``dp``, ``fsdp``:
    HSDP, replicas of a sharded model). Sharding per block means one block's parameters are
    gathered at a time, and the next block's all-gather overlaps the current compute.

    Args:
        reshard_after_forward: True frees gathered parameters after forward and gathers
            them again for backward (ZeRO-3); False keeps them until backward ends
            (ZeRO-2-like: more memory, one all-gather per step less).
    """
    for block in model.layers.values():
        fully_shard(block, mesh=dp_mesh, reshard_after_forward=reshard_after_forward,
                    mp_policy=mp_policy)
    # The root's own parameters are used last in forward: keeping them avoids a re-gather.
    fully_shard(model, mesh=dp_mesh, reshard_after_forward=False, mp_policy=mp_policy)


def apply_ddp(model: nn.Module, dp_mesh: DeviceMesh) -> nn.Module:
    """Plain data parallel: replicated parameters, gradients all-reduced in buckets."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return DistributedDataParallel(model, process_group=dp_mesh.get_group(),
                                   device_ids=device_ids)
