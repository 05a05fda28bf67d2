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


def layout_errors(layout: Layout, cfg: ModelConfig, gpu: GPUSpec,
                  gpus: int | None = None) -> list[str]:
    """Every rule ``layout`` breaks for model ``cfg`` on ``gpu`` (empty when valid)."""
    errs = []
    for name in ("tp", "pp", "dp", "micro_batch", "global_batch", "virtual_stages"):
        if getattr(layout, name) < 1:
            errs.append(f"{name} must be >= 1, got {getattr(layout, name)}")
    if errs:
        return errs
    if gpus is not None and layout.gpus != gpus:
        errs.append(f"tp*pp*dp = {layout.gpus} but there are {gpus} GPUs")
    if gpu.gpus_per_node % layout.tp:
        errs.append(f"tp={layout.tp} must divide the {gpu.gpus_per_node} GPUs of a node")
    if cfg.n_heads % layout.tp:
        errs.append(f"tp={layout.tp} must divide n_heads={cfg.n_heads}")
    if cfg.n_layers % layout.pp:
        errs.append(f"pp={layout.pp} must divide n_layers={cfg.n_layers}")
    if layout.zero_stage not in (0, 1, 2, 3):
        errs.append(f"zero_stage must be 0..3, got {layout.zero_stage}")
    if layout.global_batch % (layout.micro_batch * layout.dp):
        errs.append(f"global_batch={layout.global_batch} must be a multiple of "
                    f"micro_batch*dp = {layout.micro_batch * layout.dp}")
    elif layout.pp > 1 and layout.num_micro_batches < layout.pp:
        errs.append(f"{layout.num_micro_batches} micro-batches cannot fill {layout.pp} stages")
    errs += _schedule_errors(layout, cfg)
    return errs


def _schedule_errors(layout: Layout, cfg: ModelConfig) -> list[str]:
    if layout.schedule == Schedule.one_f_one_b:
        if layout.virtual_stages != 1:
            return ["virtual_stages > 1 needs schedule=interleaved"]
        return []
    errs = []
    if layout.pp < 2:
        errs.append("the interleaved schedule needs pp >= 2")
    elif (cfg.n_layers // layout.pp) % layout.virtual_stages:
        errs.append(f"virtual_stages={layout.virtual_stages} must divide the "
                    f"{cfg.n_layers // layout.pp} layers of a stage")
    if layout.num_micro_batches % layout.pp:
        errs.append(f"interleaving needs micro-batches ({layout.num_micro_batches}) to be a "
                    f"multiple of pp={layout.pp}")
    return errs


def check_layout(layout: Layout, cfg: ModelConfig, gpu: GPUSpec, gpus: int | None = None) -> None:
    """Raise a one-line ConfigError naming the first broken rule."""
    errs = layout_errors(layout, cfg, gpu, gpus)
    if errs:
        raise ConfigError(f"invalid layout ({layout.describe()}): {errs[0]}")
