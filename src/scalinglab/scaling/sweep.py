"""Sweep planning: a SweepConfig (``scaling.sweep_config``) becomes a list of RunSpecs.

A study directory holds::

    STUDY/sweep.json          the SweepConfig the plan came from (latest planning)
    STUDY/plan.json           {"version", "flop_convention", "runs": [RunSpec, ...]}
    STUDY/runs/<run_id>/      one ordinary trainer run directory per planned run
    STUDY/study.csv           one row per finished (complete or failed) run; see scaling.study

Three kinds of runs:

- ``isoflop`` (Chinchilla Approach 2): for every budget C, ``sizes`` model sizes spaced
  log-uniformly (ratio ``step``) around a predicted optimum, each trained on
  D = C / (FLOPs per token of that shape) tokens.
- ``fixed_size`` (Approach 1): a few model sizes, each trained to several token counts; every
  run is its own run with a cosine schedule matched to its length (the trainer's schedule
  always spans exactly the planned steps), never a checkpoint read off a longer cosine.
- ``depth_width``: shapes of one parameter count with different d_model / n_layers ratios.

Learning rate and batch follow documented rules of N (``LRRule``, ``BatchRule``). Planning is
additive: re-planning, or ``extend_brackets`` after a first pass, adds runs and never changes
or removes planned ones (they may already hold results).
"""


from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from scalinglab.config import ConfigError
from scalinglab.data.shards import open_split
from scalinglab.model.accounting import (
    count_params,
    train_flops_per_token,
)
from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import shape_for_params
from scalinglab.scaling.sweep_config import (
    RunSpec,
    SweepConfig,
)
from scalinglab.train.config import TrainConfig
from scalinglab.units import format_count

# ---------------------------------------------------------------------- shapes and runs


def params_of(model: ModelConfig, count: str) -> int:
    """Parameter count of ``model`` by ``count`` (non_embedding or total)."""
    p = count_params(model)
    return p.non_embedding if count == "non_embedding" else p.total


def model_for(cfg: SweepConfig, target: float, aspect_ratio: float | None = None) -> ModelConfig:
    """The generated shape of about ``target`` parameters in the study's family."""
    return shape_for_params(
        target, vocab_size=cfg.model.vocab_size, max_seq_len=cfg.seq_len,
        aspect_ratio=aspect_ratio or cfg.aspect_ratio, count=cfg.count, base=cfg.model,
        width_multiple=cfg.width_multiple,
    )


def flops_per_token(cfg: SweepConfig, model: ModelConfig) -> float:
    return train_flops_per_token(model, cfg.flop_convention, cfg.seq_len)


def predicted_optimum(cfg: SweepConfig, budget: float) -> float:
    """Size N whose D = C / flops_per_token(N) equals tokens_per_param x N.

    Starts from C = 6 N D and corrects for the real cost per token of the generated shapes
    (embeddings and attention make it larger than 6N for small models), a few fixed-point
    steps.
    """
    r = cfg.isoflop.tokens_per_param
    n = math.sqrt(budget / (6.0 * r))
    for _ in range(6):
        model = model_for(cfg, n)
        k = flops_per_token(cfg, model) / params_of(model, cfg.count)  # FLOPs per token per N
        n = math.sqrt(budget / (k * r))
    return n


def make_run(cfg: SweepConfig, run_id: str, kind: str, model: ModelConfig, tokens: float,
             target: float, budget: float | None = None) -> RunSpec:
    """A RunSpec whose lr and batch follow the study's rules of N."""
    n_ne = count_params(model).non_embedding
    batch = cfg.batch(n_ne, tokens, cfg.seq_len)
    # Whole steps, rounded to the nearest: the compute lands within half a batch of the plan
    # (the trainer would otherwise floor it).
    tokens = max(1, round(tokens / batch)) * batch
    train = TrainConfig(
        model=model, data=cfg.data, out=f"runs/{run_id}", tokens=int(tokens),
        flop_convention=cfg.flop_convention, seq_len=cfg.seq_len, batch_tokens=batch,
        lr=cfg.lr(n_ne), preset="sweep",
    ).merge(cfg.train)
    return RunSpec(run_id=run_id, kind=kind, budget=budget, target_params=float(target),
                   train=train.as_dict())


def shape_tag(model: ModelConfig) -> str:
    return f"L{model.n_layers}-D{model.d_model}"


def isoflop_run(cfg: SweepConfig, budget: float, target: float) -> RunSpec | None:
    """The IsoFLOP run of size ``target`` at ``budget``; None when it would be too short."""
    model = model_for(cfg, target)
    tokens = budget / flops_per_token(cfg, model)
    if tokens < cfg.batch.min_steps * cfg.seq_len:
        return None  # fewer steps than the batch rule allows even at one sequence per step
    run_id = f"iso-{budget:.2e}-{shape_tag(model)}"
    return make_run(cfg, run_id, "isoflop", model, tokens, target, budget=budget)


def isoflop_runs(cfg: SweepConfig, budget: float) -> list[RunSpec]:
    """``sizes`` runs of distinct shapes spaced by ``step`` around the predicted optimum.

    Small models have few shapes, so neighbouring targets can land on one shape; such a
    target is moved on outwards (half a step at a time) to the next new shape. A budget that
    still has fewer than ``sizes`` distinct runs stops planning with the reason, rather than
    silently planning fewer runs than a parabola fit was promised.
    """
    center = predicted_optimum(cfg, budget)
    k, step = cfg.isoflop.sizes, cfg.isoflop.step
    middle = (k - 1) / 2
    chosen: dict[int, RunSpec] = {}
    short = 0
    # centre first, then outwards, so a collapse pushes the outer sizes further out
    for i in sorted(range(k), key=lambda i: (abs(i - middle), i)):
        direction = 1 if i >= middle else -1
        spec = _distinct_run(cfg, budget, center * step ** (i - middle), direction,
                             {s.run_id for s in chosen.values()})
        if spec == "short":
            short += 1
        elif spec is not None:
            chosen[i] = spec
    runs = [chosen[i] for i in sorted(chosen)]
    if len(runs) < k:
        raise ConfigError(_too_few_message(cfg, budget, center, runs, short))
    return runs


def _distinct_run(cfg: SweepConfig, budget: float, target: float, direction: int,
                  known: set[str]) -> RunSpec | str | None:
    """The run of ``target``, moved outwards until its shape is new (at most two steps);
    "short" when the run would be too short to plan, None when no new shape was found."""
    for m in range(5):
        spec = isoflop_run(cfg, budget, target * cfg.isoflop.step ** (direction * m / 2))
        if spec is None:
            return "short"
        if spec.run_id not in known:
            return spec
    return None


def _too_few_message(cfg: SweepConfig, budget: float, center: float, runs: list[RunSpec],
                     short: int) -> str:
    k = cfg.isoflop.sizes
    shapes = ", ".join(shape_tag(r.model) for r in runs) or "none"
    head = (f"isoflop budget {budget:.3g}: only {len(runs)} of isoflop.sizes={k} sizes give "
            f"distinct runs ({shapes})")
    if short:
        return (f"{head}: {short} would train for fewer than batch.min_steps="
                f"{cfg.batch.min_steps} steps of seq_len={cfg.seq_len}; raise the budget or "
                "lower batch.min_steps or isoflop.step")
    smallest = params_of(model_for(cfg, 1.0), cfg.count)
    low = center * cfg.isoflop.step ** (-(k - 1) / 2)
    why = (f"the smallest size asked for is {format_count(low)} {cfg.count} params but the "
           f"smallest shape of this family has {format_count(smallest)}" if low < smallest
           else "neighbouring sizes round to the same shape")
    return (f"{head}: the sizes collapse onto the same shapes ({why}); raise the budget, lower "
            f"width_multiple (now {cfg.width_multiple}), use a smaller vocabulary (now "
            f"{cfg.model.vocab_size}) or flop_convention=kaplan (non-embedding sizes)")


def fixed_size_runs(cfg: SweepConfig) -> list[RunSpec]:
    runs = []
    for target in cfg.fixed_size.params:
        model = model_for(cfg, target)
        n = params_of(model, cfg.count)
        for r in cfg.fixed_size.tokens_per_param:
            run_id = f"fix-{shape_tag(model)}-T{r * n:.2e}"
            runs.append(make_run(cfg, run_id, "fixed_size", model, r * n, target))
    return runs


def depth_width_runs(cfg: SweepConfig) -> list[RunSpec]:
    runs = []
    for target in cfg.depth_width.params:
        for aspect in cfg.depth_width.aspect_ratios:
            model = model_for(cfg, target, aspect_ratio=aspect)
            tokens = cfg.depth_width.tokens_per_param * params_of(model, cfg.count)
            run_id = f"dw-{target:.2e}-{shape_tag(model)}"
            runs.append(make_run(cfg, run_id, "depth_width", model, tokens, target))
    return runs


def plan_runs(cfg: SweepConfig) -> list[RunSpec]:
    """Every run the config asks for (duplicates of one shape and length collapse)."""
    if cfg.isoflop.sizes < 3 and cfg.isoflop.budgets:
        raise ConfigError("SweepConfig.isoflop.sizes must be >= 3 to fit a parabola")
    if cfg.isoflop.step <= 1:
        raise ConfigError("SweepConfig.isoflop.step must be > 1")
    runs = [r for c in cfg.isoflop.budgets for r in isoflop_runs(cfg, c)]
    runs += fixed_size_runs(cfg) + depth_width_runs(cfg)
    if not runs:
        raise ConfigError("the sweep plans no runs: set isoflop.budgets, fixed_size.params "
                          "or depth_width.params")
    unique: dict[str, RunSpec] = {}
    for r in runs:
        unique.setdefault(r.run_id, r)
    return list(unique.values())


# ---------------------------------------------------------------------- the study directory


def resolve_config(cfg: SweepConfig) -> SweepConfig:
    """Absolute data path and the vocabulary read from the shards (unless set)."""
    if not cfg.data:
        raise ConfigError("SweepConfig.data (the token shard directory) is not set")
    _check_grids(cfg)
    data = str(Path(cfg.data).resolve())
    vocab = cfg.vocab_size or int(open_split(data, "train")[0].header["vocab_size"])
    model = cfg.model.merge({"vocab_size": vocab, "max_seq_len": cfg.seq_len})
    return dataclasses.replace(cfg, data=data, vocab_size=vocab, model=model)


def _check_grids(cfg: SweepConfig) -> None:
    """Budgets, sizes and ratios must be positive (a negative budget has no optimum: planning
    would fail deep inside with a math domain error)."""
    lists = {"isoflop.budgets": cfg.isoflop.budgets, "fixed_size.params": cfg.fixed_size.params,
             "fixed_size.tokens_per_param": cfg.fixed_size.tokens_per_param,
             "depth_width.params": cfg.depth_width.params,
             "depth_width.aspect_ratios": cfg.depth_width.aspect_ratios,
             "isoflop.tokens_per_param": [cfg.isoflop.tokens_per_param],
             "depth_width.tokens_per_param": [cfg.depth_width.tokens_per_param]}
    for name, values in lists.items():
        bad = [v for v in values if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ConfigError(f"SweepConfig.{name}: must be positive numbers, got {bad[0]:g}")
    if not cfg.isoflop.step > 1:
        raise ConfigError(f"SweepConfig.isoflop.step: must be > 1, got {cfg.isoflop.step}")


# ---------------------------------------------------------------------- warnings

DEGENERATE_FACTOR = 4.0
"""A shape is degenerate when its d_model / n_layers is this many times below aspect_ratio."""


def degenerate_shapes(cfg: SweepConfig, runs: list[RunSpec]) -> list[str]:
    """Shape tags of the isoflop / fixed-size runs far deeper than they are wide.

    They appear when the width is floored at ``width_multiple`` and the generator can only
    reach the target size by adding layers (e.g. 13 layers of width 16): such a model is a
    different family from its neighbours and bends the fits.
    """
    tags = []
    for r in runs:
        m = r.model
        if r.kind in ("isoflop", "fixed_size") and m.n_layers > 1 and \
                m.d_model / m.n_layers < cfg.aspect_ratio / DEGENERATE_FACTOR:
            tags.append(shape_tag(m))
    return list(dict.fromkeys(tags))


def plan_warnings(cfg: SweepConfig, runs: list[RunSpec]) -> list[str]:
    """One-line warnings about the planned ``runs`` (no prefix)."""
    tags = degenerate_shapes(cfg, runs)
    if not tags:
        return []
    return [f"{len(tags)} planned shape(s) are much deeper than wide ({', '.join(tags[:6])}"
            f"{', ...' if len(tags) > 6 else ''}; d_model / n_layers < aspect_ratio="
            f"{cfg.aspect_ratio:g} / {DEGENERATE_FACTOR:g}): small widths come in coarse "
            f"steps of width_multiple={cfg.width_multiple}, so the size was reached with "
            f"depth; set a smaller width_multiple (e.g. "
            f"{max(1, cfg.width_multiple // 4)}) or raise the sizes/budgets"]
