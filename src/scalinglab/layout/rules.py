"""Can this layout run? The one set of rules that ``scalinglab train`` (``--dry-run`` and the
real run) and the planner (``plan layout`` / ``plan run``) both apply, so both refuse a layout
with the same one-line words. Pure Python, no torch: the planner imports it cheaply.

The rules are written in the trainer's vocabulary (``parallel.*`` fields); the planner turns
its ``Layout`` into a ``ParallelConfig`` first (``scalinglab.plan.launch.to_parallel``).
"""

from __future__ import annotations

from scalinglab.layout.config import ParallelConfig, PPSchedule
from scalinglab.model.config import ModelConfig, PositionType


def resolved_fsdp(cfg: ParallelConfig, world_size: int) -> int:
    """``fsdp``, with -1 resolved to what ``world_size`` leaves (0 when it does not divide)."""
    if cfg.fsdp != -1:
        return cfg.fsdp
    rest = cfg.dp * cfg.tp * cfg.pp
    return world_size // rest if world_size % rest == 0 else 0


def degree_problem(cfg: ParallelConfig, world_size: int) -> str | None:
    """Why the degrees do not multiply to ``world_size`` (None when they do)."""
    fsdp = resolved_fsdp(cfg, world_size)
    if fsdp == 0:
        return (f"parallel: dp*tp*pp = {cfg.dp * cfg.tp * cfg.pp} does not divide the world "
                f"size {world_size}")
    product = cfg.dp * fsdp * cfg.tp * cfg.pp
    if product != world_size:
        return (f"parallel: dp={cfg.dp} x fsdp={fsdp} x tp={cfg.tp} x pp={cfg.pp} = "
                f"{product}, but the world size is {world_size}")
    return None


def layout_problems(model: ModelConfig, cfg: ParallelConfig, world_size: int,
                    batch_seqs: int, micro_batch: int, seq_len: int) -> list[str]:
    """Every reason ``cfg`` cannot train ``model`` on ``world_size`` ranks (empty: it can).

    Args:
        batch_seqs: global batch in sequences.
        micro_batch: sequences per forward pass on one rank (0: the whole local batch).
        seq_len: training context (sequence parallelism splits it by ``tp``).
    """
    problem = degree_problem(cfg, world_size)
    if problem:
        return [problem]
    fsdp = resolved_fsdp(cfg, world_size)
    return [*_tp_problems(model, cfg, seq_len), *_option_problems(cfg, fsdp),
            *_pp_problems(model, cfg), *_batch_problems(cfg, fsdp, batch_seqs, micro_batch)]


def _tp_problems(model: ModelConfig, cfg: ParallelConfig, seq_len: int) -> list[str]:
    if cfg.tp == 1:
        return []
    sizes = (("model.n_heads", model.n_heads), ("model.n_kv_heads", model.kv_heads),
             ("model.d_ff", model.ff_dim), ("model.vocab_size", model.vocab_size),
             ("seq_len", seq_len))
    errs = [f"parallel.tp={cfg.tp} does not divide {name}={size}"
            for name, size in sizes if size % cfg.tp]
    if model.position == PositionType.relative:
        errs.append("parallel.tp > 1 does not support model.position=relative")
    return errs


def _option_problems(cfg: ParallelConfig, fsdp: int) -> list[str]:
    if cfg.shard_optimizer and (fsdp > 1 or cfg.tp > 1 or cfg.pp > 1 or cfg.dp == 1):
        return ["ZeRO-1 (zero_stage=1, parallel.shard_optimizer) runs only under plain data "
                f"parallelism (dp > 1, fsdp = tp = pp = 1), not dp={cfg.dp} fsdp={fsdp} "
                f"tp={cfg.tp} pp={cfg.pp}; use FSDP (ZeRO-2/3) instead"]
    return []


def _pp_problems(model: ModelConfig, cfg: ParallelConfig) -> list[str]:
    errs = []
    if cfg.stages_per_rank > 1 and cfg.pp_schedule != PPSchedule.interleaved_1f1b:
        errs.append(f"parallel.pp_stages_per_rank={cfg.stages_per_rank} needs "
                    "parallel.pp_schedule=interleaved_1f1b")
    if cfg.pp > 1:
        stages = cfg.pp * cfg.stages_per_rank
        if model.n_layers % stages:
            errs.append(f"parallel: {stages} pipeline stages (pp={cfg.pp} x "
                        f"{cfg.stages_per_rank} per rank) do not divide "
                        f"model.n_layers={model.n_layers}")
        if model.tie_embeddings:
            errs.append("parallel.pp > 1 needs model.tie_embeddings=false (the embedding and "
                        "the output layer sit on different stages)")
    return errs


def _batch_problems(cfg: ParallelConfig, fsdp: int, batch_seqs: int,
                    micro_batch: int) -> list[str]:
    dp_degree = cfg.dp * fsdp
    if batch_seqs % dp_degree:
        return [f"parallel: dp x fsdp = {dp_degree} does not divide the batch of "
                f"{batch_seqs} sequences"]
    local = batch_seqs // dp_degree
    micro = micro_batch or local
    if local % micro:
        return [f"parallel: micro_batch_size={micro} does not divide the {local} sequences "
                "per data-parallel rank"]
    n_micro = local // micro
    if cfg.pp > 1 and n_micro < cfg.pp:
        return [f"parallel: {n_micro} micro-batches per step is fewer than pp={cfg.pp} "
                "stages; lower micro_batch_size"]
    rounds = max(1, n_micro // cfg.pp)
    if cfg.pp > 1 and cfg.pp_schedule == PPSchedule.interleaved_1f1b and n_micro % rounds:
        # torch.distributed.pipelining's interleaved schedule runs whole rounds of pp.
        return [f"parallel: the interleaved schedule needs the {n_micro} micro-batches to be "
                f"a multiple of {rounds} rounds of pp={cfg.pp}"]
    return []
