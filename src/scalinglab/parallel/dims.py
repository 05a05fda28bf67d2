"""ParallelDims: validates the degrees of a layout and owns its named DeviceMesh.

The mesh has four named axes, outermost first: ``pp`` (across nodes), ``dp`` (replicas),
``fsdp`` (parameter shards) and ``tp`` (innermost, so tensor-parallel peers are neighbouring
ranks on one node and talk over the fastest links). Axes of size 1 are kept, so code can
always ask for ``mesh["tp"]``; they cost nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from scalinglab.config import ConfigError
from scalinglab.layout.config import ParallelConfig
from scalinglab.layout.rules import degree_problem, layout_problems, resolved_fsdp
from scalinglab.model.config import ModelConfig

AXES = ("pp", "dp", "fsdp", "tp")


@dataclasses.dataclass(frozen=True)
class ParallelDims:
    """Resolved degrees; ``dp * fsdp * tp * pp == world_size``."""

    dp: int
    fsdp: int
    tp: int
    pp: int
    world_size: int

    @classmethod
    def from_config(cls, cfg: ParallelConfig, world_size: int) -> ParallelDims:
        """Resolve ``fsdp=-1`` and check that the degrees multiply to ``world_size``."""
        problem = degree_problem(cfg, world_size)
        if problem:
            raise ConfigError(problem)
        dims = cls(cfg.dp, resolved_fsdp(cfg, world_size), cfg.tp, cfg.pp, world_size)
        return dims

    @property
    def dp_degree(self) -> int:
        """Number of distinct data shards (replicas x shards): the batch is split this way."""
        return self.dp * self.fsdp

    @property
    def uses_fsdp(self) -> bool:
        """FSDP2 shards the parameters when ``fsdp > 1``; replicas combined with TP or PP
        also go through FSDP2 (HSDP with shards of one) rather than DDP."""
        return self.fsdp > 1 or (self.dp > 1 and (self.tp > 1 or self.pp > 1))

    def validate(self, model: ModelConfig, cfg: ParallelConfig, batch_seqs: int,
                 micro_batch: int, seq_len: int) -> None:
        """Check the layout against the model and the batch; one-line errors naming fields
        (the rules of :mod:`scalinglab.layout.rules`, which the planner applies too).

        Args:
            model: the model to be split.
            cfg: the options (schedule, stages per rank).
            batch_seqs: global batch in sequences.
            micro_batch: sequences per forward pass on one rank (0: the whole local batch).
            seq_len: training context (sequence parallelism splits it by ``tp``).
        """
        problems = layout_problems(model, cfg, self.world_size, batch_seqs, micro_batch,
                                   seq_len)
        if problems:
            raise ConfigError(problems[0])

    def local_batch(self, batch_seqs: int) -> int:
        """Sequences per step on one data-parallel rank."""
        if batch_seqs % self.dp_degree:
            raise ConfigError(f"parallel: dp x fsdp = {self.dp_degree} does not divide the "
                              f"batch of {batch_seqs} sequences")
        return batch_seqs // self.dp_degree

    def num_microbatches(self, batch_seqs: int, micro_batch: int) -> int:
        local = self.local_batch(batch_seqs)
        micro = micro_batch or local
        if local % micro:
            raise ConfigError(f"parallel: micro_batch_size={micro} does not divide the "
                              f"{local} sequences per data-parallel rank")
        return local // micro

    def build_mesh(self, device_type: str):
        """The named 4-axis DeviceMesh (``pp``, ``dp``, ``fsdp``, ``tp``)."""
        from torch.distributed.device_mesh import init_device_mesh

        return init_device_mesh(device_type, (self.pp, self.dp, self.fsdp, self.tp),
                                mesh_dim_names=AXES)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def init_process_group(timeout_s: int) -> tuple[int, int]:
    """Join the torchrun job (NCCL on GPU, gloo on CPU); returns (rank, world_size).

    Without torchrun (no ``WORLD_SIZE`` in the environment) this process forms a group of
    one, so a sharded run can also be resumed, or a layout debugged, in a single process.
    """
    import os

    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        timeout = timedelta(seconds=timeout_s)
        if "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend, timeout=timeout)
        else:  # an in-memory store: no port to pick, nothing to collide with
            dist.init_process_group(backend, rank=0, world_size=1, store=dist.HashStore(),
                                    timeout=timeout)
    return dist.get_rank(), dist.get_world_size()
