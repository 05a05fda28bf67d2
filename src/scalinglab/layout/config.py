"""ParallelConfig: how a run is laid out over processes, as plain data (no torch import).

It is a field of ``TrainConfig`` (``parallel.*`` overrides, or ``--parallel dp=A,fsdp=B,tp=C,
pp=D`` on ``scalinglab train``). The layout is not part of a run's identity: a run may be
resumed under another layout, so the trainer ignores this field when it compares configs.
"""

from __future__ import annotations

import dataclasses
import enum

from scalinglab.config import Config, ConfigError


class ACMode(enum.StrEnum):
    """Activation checkpointing: what a block keeps for backward (planner: ``recompute``).

    ``selective`` is per-op, as torchtitan's ``op`` mode and Korthikanti et al. (2022): the
    outputs of the matmuls are kept, everything else (attention scores, softmax, norms,
    activations) is recomputed in backward. ``full`` keeps only each block's input.
    """

    none = "none"
    selective = "selective"
    full = "full"

    @classmethod
    def _missing_(cls, value):
        # Configs written before the modes existed hold a bool: true meant full.
        if isinstance(value, bool) or value in ("true", "false"):
            return cls.full if value in (True, "true") else cls.none
        return None


class PPSchedule(enum.StrEnum):
    """Pipeline schedule (``torch.distributed.pipelining``)."""

    gpipe = "gpipe"
    one_f_one_b = "1f1b"
    interleaved_1f1b = "interleaved_1f1b"


@dataclasses.dataclass
class ParallelConfig(Config):
    """Degrees of each kind of parallelism and their options. All 1: one process."""

    dp: int = 1
    """Replicated data-parallel degree (DDP alone; HSDP replicas when combined with others)."""
    fsdp: int = 1
    """Sharded data-parallel degree (FSDP2 / ZeRO-3); -1 means whatever the world size leaves."""
    tp: int = 1
    """Tensor-parallel degree (Megatron plan on DTensor); keep it within one node."""
    pp: int = 1
    """Pipeline-parallel degree (number of pipeline ranks); spans nodes."""
    pp_schedule: PPSchedule = PPSchedule.one_f_one_b
    """gpipe, 1f1b or interleaved_1f1b."""
    pp_stages_per_rank: int = 0
    """Model chunks per pipeline rank; 0 means 2 for interleaved_1f1b, otherwise 1."""
    reshard_after_forward: bool = True
    """FSDP2: free gathered parameters after forward (ZeRO-3); False keeps them (ZeRO-2-like)."""
    activation_checkpoint: ACMode = ACMode.none
    """none, selective (per-op: keep matmul outputs, recompute the rest) or full (keep each
    block's input, rerun its forward in backward: ~1/3 more FLOPs)."""
    shard_optimizer: bool = False
    """ZeRO-1: shard AdamW's state over the ``dp`` axis (``ZeroRedundancyOptimizer`` over
    DDP); only with plain data parallelism (fsdp = tp = pp = 1)."""
    loss_parallel: bool = True
    """With tp > 1 (and pp = 1): cross-entropy on vocab-sharded logits, never gathering them."""
    timeout_s: int = 300
    """Collective timeout, so that a dead rank fails the run instead of hanging it."""

    def __post_init__(self) -> None:
        for name in ("dp", "tp", "pp"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ParallelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.fsdp < 1 and self.fsdp != -1:
            raise ConfigError(f"ParallelConfig.fsdp must be >= 1 or -1, got {self.fsdp}")
        self.activation_checkpoint = ACMode(self.activation_checkpoint)
        if self.pp_stages_per_rank < 0:
            raise ConfigError("ParallelConfig.pp_stages_per_rank must be >= 0")

    @property
    def stages_per_rank(self) -> int:
        if self.pp_stages_per_rank:
            return self.pp_stages_per_rank
        return 2 if self.pp_schedule == PPSchedule.interleaved_1f1b else 1

    @property
    def is_parallel(self) -> bool:
        """True when any degree asks for more than one process."""
        return max(self.dp, self.fsdp, self.tp, self.pp) > 1 or self.fsdp == -1


def parse_degrees(text: str) -> dict[str, int]:
    """``"dp=2,tp=2"`` -> ``{"dp": 2, "tp": 2}`` (the ``--parallel`` flag)."""
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in ("dp", "fsdp", "tp", "pp"):
            raise ConfigError(f"--parallel: {item!r} is not one of dp=N, fsdp=N, tp=N, pp=N")
        try:
            out[key] = int(value)
        except ValueError:
            raise ConfigError(f"--parallel: {item!r}: {value!r} is not an integer") from None
    return out
