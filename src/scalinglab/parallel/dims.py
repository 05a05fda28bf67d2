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
from scalinglab.model.config import ModelConfig, PositionType
from scalinglab.parallel.config import ParallelConfig, PPSchedule

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
        fsdp = cfg.fsdp
        rest = cfg.dp * cfg.tp * cfg.pp
        if fsdp == -1:
            if world_size % rest:
                raise ConfigError(
                    f"parallel: dp*tp*pp = {rest} does not divide the world size {world_size}"
                )
            fsdp = world_size // rest
        dims = cls(cfg.dp, fsdp, cfg.tp, cfg.pp, world_size)
        if dims.dp * dims.fsdp * dims.tp * dims.pp != world_size:
            raise ConfigError(
                f"parallel: dp={dims.dp} x fsdp={dims.fsdp} x tp={dims.tp} x pp={dims.pp} = "
                f"{dims.dp * dims.fsdp * dims.tp * dims.pp}, but the world size is {world_size}"
            )
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
        """Check the layout against the model and the batch; one-line errors naming fields.

        Args:
            model: the model to be split.
            cfg: the options (schedule, stages per rank).
            batch_seqs: global batch in sequences.
            micro_batch: sequences per forward pass on one rank (0: the whole local batch).
            seq_len: training context (sequence parallelism splits it by ``tp``).
        """
        if self.tp > 1:
            for name, size in (("model.n_heads", model.n_heads),
                               ("model.n_kv_heads", model.kv_heads), ("model.d_ff", model.ff_dim),
                               ("model.vocab_size", model.vocab_size), ("seq_len", seq_len)):
                if size % self.tp:
                    raise ConfigError(f"parallel.tp={self.tp} does not divide {name}={size}")
            if model.position == PositionType.relative:
                raise ConfigError("parallel.tp > 1 does not support model.position=relative")
        if cfg.stages_per_rank > 1 and cfg.pp_schedule != PPSchedule.interleaved_1f1b:
            raise ConfigError(f"parallel.pp_stages_per_rank={cfg.stages_per_rank} needs "
                              "parallel.pp_schedule=interleaved_1f1b")
        if self.pp > 1:
            stages = self.pp * cfg.stages_per_rank
            if model.n_layers % stages:
                raise ConfigError(f"parallel: {stages} pipeline stages (pp={self.pp} x "
                                  f"{cfg.stages_per_rank} per rank) do not divide "
                                  f"model.n_layers={model.n_layers}")
            if model.tie_embeddings:
                raise ConfigError("parallel.pp > 1 needs model.tie_embeddings=false (the "
                                  "embedding and the output layer sit on different stages)")
        self.local_batch(batch_seqs)
        n_micro = self.num_microbatches(batch_seqs, micro_batch)
        if self.pp > 1 and n_micro < self.pp:
            raise ConfigError(f"parallel: {n_micro} micro-batches per step is fewer than "
                              f"pp={self.pp} stages; lower micro_batch_size")

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
