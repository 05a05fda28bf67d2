"""Layout search: enumerate valid 3D-parallel layouts, drop those that do not fit memory, rank
the rest by estimated iteration time."""

from __future__ import annotations

import dataclasses
import itertools

from scalinglab.config import Config, ConfigError
from scalinglab.model.config import ModelConfig
from scalinglab.plan.hardware import GPUSpec
from scalinglab.plan.layout import Layout, Recompute, Schedule, layout_errors
from scalinglab.plan.memory import MemoryReport, memory_per_gpu
from scalinglab.plan.timing import EfficiencyConfig, IterationEstimate, estimate_iteration


@dataclasses.dataclass
class SearchSpace(Config):
    """The values the search tries for each layout knob (override any with ``key=[...]``)."""

    tp: list[int] | None = None
    """Tensor-parallel degrees; default: divisors of the node size that divide n_heads."""
    pp: list[int] | None = None
    """Pipeline degrees; default: every divisor of n_layers."""
    micro_batch: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 4, 8])
    """Micro-batch sizes (sequences)."""
    zero_stage: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2, 3])
    """ZeRO stages."""
    recompute: list[Recompute] = dataclasses.field(
        default_factory=lambda: [Recompute.none, Recompute.selective, Recompute.full])
    """Activation recomputation modes."""
    sequence_parallel: list[bool] = dataclasses.field(default_factory=lambda: [False, True])
    """Sequence parallelism on/off. Only its value ``tp > 1`` is tried: the trainer's tensor
    parallel plan always splits the sequence (it saves memory at no extra communication)."""
    virtual_stages: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 4])
    """Interleaving chunks per GPU; 1 is plain 1F1B (only > 1 with pp > 1)."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One feasible layout with its memory and time estimates."""

    layout: Layout
    memory: MemoryReport
    estimate: IterationEstimate

    def as_dict(self) -> dict:
        return {"layout": self.layout.as_dict(), "label": self.layout.describe(),
                "memory": self.memory.as_dict(), "estimate": self.estimate.as_dict()}


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """Feasible layouts, fastest first, and how many were tried and dropped."""

    feasible: list[Candidate]
    n_valid: int
    """Layouts that satisfy every divisibility rule."""
    n_out_of_memory: int
    """Valid layouts dropped because they do not fit the GPU."""

    def find(self, **degrees) -> list[Candidate]:
        """Feasible candidates whose layout matches ``degrees`` (e.g. tp=8, pp=35)."""
        return [c for c in self.feasible
                if all(getattr(c.layout, k) == v for k, v in degrees.items())]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def enumerate_layouts(cfg: ModelConfig, gpus: int, gpu: GPUSpec, global_batch: int,
                      space: SearchSpace | None = None, seq_len: int = 0):
    """Every layout of ``space`` on ``gpus`` GPUs that breaks no validity rule."""
    space = space or SearchSpace()
    tps = space.tp or [t for t in _divisors(gpu.gpus_per_node) if cfg.n_heads % t == 0]
    pps = space.pp or _divisors(cfg.n_layers)
    for tp, pp in itertools.product(tps, pps):
        if gpus % (tp * pp):
            continue
        dp = gpus // (tp * pp)
        for mb, zero, rc, sp, v in itertools.product(
                space.micro_batch, space.zero_stage, space.recompute,
                space.sequence_parallel, space.virtual_stages):
            if sp != (tp > 1) or (v > 1 and pp == 1):
                continue
            if dp == 1 and zero > 0:
                continue  # nothing to shard over: same as zero 0
            layout = Layout(tp=tp, pp=pp, dp=dp, zero_stage=zero, micro_batch=mb,
                            global_batch=global_batch, recompute=Recompute(rc),
                            sequence_parallel=sp, virtual_stages=v,
                            schedule=Schedule.interleaved if v > 1 else Schedule.one_f_one_b)
            if not layout_errors(layout, cfg, gpu, gpus, seq_len):
                yield layout


def search_layouts(cfg: ModelConfig, gpus: int, gpu: GPUSpec, global_batch: int,
                   seq_len: int, space: SearchSpace | None = None,
                   eff: EfficiencyConfig | None = None) -> SearchResult:
    """Feasible layouts for training ``cfg`` on ``gpus`` x ``gpu``, fastest first.

    Raises ConfigError (one line) when no layout is valid or none fits in memory.
    """
    if gpus < 1 or global_batch < 1 or seq_len < 1:
        raise ConfigError(f"gpus, batch and seq must be positive: {gpus}, {global_batch}, "
                          f"{seq_len}")
    feasible, n_valid, n_oom = [], 0, 0
    for layout in enumerate_layouts(cfg, gpus, gpu, global_batch, space, seq_len):
        n_valid += 1
        memory = memory_per_gpu(cfg, layout, seq_len, gpu)
        if not memory.fits:
            n_oom += 1
            continue
        feasible.append(Candidate(layout, memory, estimate_iteration(cfg, layout, gpu,
                                                                     seq_len, eff)))
    if n_valid == 0:
        raise ConfigError(
            f"no valid layout for {gpus} GPUs ({gpu.gpus_per_node} per node), global batch "
            f"{global_batch}, {cfg.n_layers} layers, {cfg.n_heads} heads: tp*pp*dp must equal "
            f"the GPU count, pp divide the layers and micro-batch*dp divide the batch")
    if not feasible:
        raise ConfigError(f"none of the {n_valid} valid layouts fits in {gpu.memory_gib:g} GiB "
                          f"of {gpu.name}; add GPUs or use a GPU with more memory")
    feasible.sort(key=lambda c: (c.estimate.total_s, c.memory.worst.total))
    return SearchResult(feasible=feasible, n_valid=n_valid, n_out_of_memory=n_oom)
