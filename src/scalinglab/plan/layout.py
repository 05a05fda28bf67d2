"""A 3D-parallel layout (tensor x pipeline x data, ZeRO, micro-batching) and its validity rules.

Axes follow Megatron-LM / torchtitan usage: tensor parallelism (``tp``) splits every matrix
inside an NVLink domain, pipeline parallelism (``pp``) splits the layers into stages, data
parallelism (``dp``) replicates the rest; ZeRO stage 1/2/3 shards optimizer state, gradients and
weights across the data-parallel axis (stage 3 is FSDP's full sharding).
"""

from __future__ import annotations

import dataclasses
import enum

from scalinglab.config import Config, ConfigError
from scalinglab.layout.config import ACMode, ParallelConfig, PPSchedule
from scalinglab.layout.rules import layout_problems, resolved_fsdp
from scalinglab.model.config import ModelConfig
from scalinglab.plan.hardware import GPUSpec


class Recompute(enum.StrEnum):
    """Activation recomputation (Korthikanti et al. 2022)."""

    none = "none"
    selective = "selective"  # recompute attention scores/softmax/dropout only
    full = "full"  # keep only each layer's input, rerun the whole forward in backward


class Schedule(enum.StrEnum):
    """Pipeline schedule: 1F1B (PipeDream-Flush) or interleaved 1F1B with v chunks per GPU."""

    one_f_one_b = "1f1b"
    interleaved = "interleaved"


@dataclasses.dataclass
class Layout(Config):
    """How one training step is spread over ``tp * pp * dp`` GPUs."""

    tp: int = 1
    """Tensor-parallel degree (inside a node)."""
    pp: int = 1
    """Pipeline-parallel degree (number of stages)."""
    dp: int = 1
    """Data-parallel degree."""
    zero_stage: int = 0
    """0: replicated; 1: optimizer state sharded over dp; 2: + gradients; 3: + weights (FSDP)."""
    micro_batch: int = 1
    """Sequences per micro-batch on one pipeline."""
    global_batch: int = 1
    """Sequences per optimizer step, over all data-parallel replicas."""
    schedule: Schedule = Schedule.one_f_one_b
    """Pipeline schedule."""
    virtual_stages: int = 1
    """Model chunks per GPU for the interleaved schedule (v); 1 for plain 1F1B."""
    sequence_parallel: bool = False
    """Shard norms/dropout activations along the sequence over the tp group (Korthikanti)."""
    recompute: Recompute = Recompute.none
    """Activation recomputation."""

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def num_micro_batches(self) -> int:
        """Micro-batches each pipeline runs per step (m)."""
        return self.global_batch // (self.micro_batch * self.dp)

    def describe(self) -> str:
        """Short label, e.g. ``tp8 pp35 dp8 mb1 zero1 full``."""
        v = f" v{self.virtual_stages}" if self.schedule == Schedule.interleaved else ""
        sp = " sp" if self.sequence_parallel else ""
        return (f"tp{self.tp} pp{self.pp} dp{self.dp} mb{self.micro_batch} "
                f"zero{self.zero_stage} {self.recompute.value}{sp}{v}")


# Megatron-LM pads the vocabulary to a multiple of 128 x tp (--make-vocab-size-divisible-by)
# so that the vocab-split output layer has equal, well-shaped slices.
VOCAB_MULTIPLE = 128


def to_parallel(layout: Layout) -> ParallelConfig:
    """The trainer's ``parallel`` config that runs ``layout`` (exact; inverse: from_parallel).

    ZeRO-0 is replication (DDP, or FSDP2 replicas of one shard next to TP/PP), ZeRO-1
    ``ZeroRedundancyOptimizer`` over DDP, ZeRO-2 FSDP2 keeping the gathered weights from
    forward to backward, ZeRO-3 FSDP2 resharding after forward.
    """
    zero = layout.zero_stage
    interleaved = layout.schedule == Schedule.interleaved
    return ParallelConfig(
        dp=layout.dp if zero < 2 else 1, fsdp=layout.dp if zero >= 2 else 1,
        tp=layout.tp, pp=layout.pp, shard_optimizer=zero == 1,
        reshard_after_forward=zero != 2,
        activation_checkpoint=ACMode(str(layout.recompute)),
        pp_schedule=PPSchedule.interleaved_1f1b if interleaved else PPSchedule.one_f_one_b,
        pp_stages_per_rank=layout.virtual_stages if interleaved else 0)


def from_parallel(pcfg: ParallelConfig, world_size: int, global_batch: int,
                  micro_batch: int) -> Layout:
    """The planner's description of a trainer layout (one-line error for what it lacks)."""
    fsdp = resolved_fsdp(pcfg, world_size)
    if pcfg.dp > 1 and fsdp > 1:
        raise ConfigError("the planner has no word for HSDP (parallel.dp > 1 with fsdp > 1)")
    if pcfg.pp_schedule == PPSchedule.gpipe:
        raise ConfigError("the planner models 1f1b and interleaved_1f1b, not gpipe")
    dp = pcfg.dp * fsdp
    zero = (3 if pcfg.reshard_after_forward else 2) if fsdp > 1 else int(pcfg.shard_optimizer)
    interleaved = pcfg.pp_schedule == PPSchedule.interleaved_1f1b
    return Layout(tp=pcfg.tp, pp=pcfg.pp, dp=dp, zero_stage=zero, micro_batch=micro_batch,
                  global_batch=global_batch,
                  schedule=Schedule.interleaved if interleaved else Schedule.one_f_one_b,
                  virtual_stages=pcfg.stages_per_rank if interleaved else 1,
                  sequence_parallel=pcfg.tp > 1,
                  recompute=Recompute(pcfg.activation_checkpoint.value))


def run_overrides(cfg: ModelConfig, layout: Layout) -> dict[str, object]:
    """Model changes the trainer needs to run ``layout``, as Megatron makes them: the
    vocabulary padded to a multiple of 128 x tp, embeddings untied across a pipeline (the
    memory model already counts Megatron's copy of tied embeddings on the last stage)."""
    out: dict[str, object] = {}
    multiple = VOCAB_MULTIPLE * layout.tp
    if layout.tp > 1 and cfg.vocab_size % layout.tp:
        out["vocab_size"] = -(-cfg.vocab_size // multiple) * multiple
    if layout.pp > 1 and cfg.tie_embeddings:
        out["tie_embeddings"] = False
    return out


def layout_errors(layout: Layout, cfg: ModelConfig, gpu: GPUSpec,
                  gpus: int | None = None, seq_len: int = 0) -> list[str]:
    """Every rule ``layout`` breaks for model ``cfg`` on ``gpu`` (empty when valid): the
    planner's own (GPU count, node size) and the trainer's (:mod:`scalinglab.layout.rules`,
    the words ``scalinglab train --dry-run`` uses)."""
    errs = []
    for name in ("tp", "pp", "dp", "micro_batch", "global_batch", "virtual_stages"):
        if getattr(layout, name) < 1:
            errs.append(f"{name} must be >= 1, got {getattr(layout, name)}")
    if layout.zero_stage not in (0, 1, 2, 3):
        errs.append(f"zero_stage must be 0..3, got {layout.zero_stage}")
    if errs:
        return errs
    if gpus is not None and layout.gpus != gpus:
        errs.append(f"tp*pp*dp = {layout.gpus} but there are {gpus} GPUs")
    if gpu.gpus_per_node % layout.tp:
        errs.append(f"tp={layout.tp} must divide the {gpu.gpus_per_node} GPUs of a node")
    errs += _schedule_errors(layout)
    if errs:
        return errs
    model = dataclasses.replace(cfg, **run_overrides(cfg, layout))
    return layout_problems(model, to_parallel(layout), layout.gpus, layout.global_batch,
                           layout.micro_batch, seq_len)


def _schedule_errors(layout: Layout) -> list[str]:
    if layout.schedule == Schedule.one_f_one_b:
        if layout.virtual_stages != 1:
            return ["virtual_stages > 1 needs schedule=interleaved"]
        return []
    if layout.pp < 2:
        return ["the interleaved schedule needs pp >= 2"]
    return []


def check_layout(layout: Layout, cfg: ModelConfig, gpu: GPUSpec, gpus: int | None = None,
                 seq_len: int = 0) -> None:
    """Raise a one-line ConfigError naming the first broken rule."""
    errs = layout_errors(layout, cfg, gpu, gpus, seq_len)
    if errs:
        raise ConfigError(f"invalid layout ({layout.describe()}): {errs[0]}")
