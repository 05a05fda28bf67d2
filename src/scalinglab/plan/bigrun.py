"""The plan for the big run: budget -> compute-optimal N and D -> shape -> layout -> memory ->
days and GPU-hours -> predicted loss (with an interval when the fits carry bootstrap samples)."""

from __future__ import annotations

import dataclasses
import math

from scalinglab.config import ConfigError
from scalinglab.model.accounting import (
    FlopConvention,
    count_params,
    law_param_count,
    train_flops_per_token,
)
from scalinglab.model.config import ModelConfig
from scalinglab.plan.depth_width import hardware_friendly_shape
from scalinglab.plan.hardware import GPUSpec
from scalinglab.plan.laws import Fits, chinchilla_paper_fits
from scalinglab.plan.search import Candidate, SearchSpace, search_layouts
from scalinglab.plan.timing import SECONDS_PER_DAY, EfficiencyConfig


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Everything the planner decided for one budget."""

    budget: float
    law: str
    source: str
    flop_convention: str
    n_opt: float
    """Parameters the law asks for (in the law's counting: non-embedding for kaplan)."""
    d_opt: float
    model: ModelConfig
    params_total: int
    params_non_embedding: int
    tokens: float
    """Tokens the concrete shape can see within the budget."""
    iterations: int
    best: Candidate
    n_feasible: int
    days: float
    gpu_hours: float
    loss: float | None
    loss_interval: tuple[float, float] | None
    n_interval: tuple[float, float] | None
    notes: tuple[str, ...]

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("model", "best")}
        d["model"] = self.model.as_dict()
        d["layout"] = self.best.as_dict()
        return d


def _quantiles(values: list[float], lo: float = 0.025, hi: float = 0.975) -> tuple[float, float]:
    v = sorted(values)

    def q(p: float) -> float:
        i = p * (len(v) - 1)
        j = min(int(i), len(v) - 2) if len(v) > 1 else 0
        return v[j] + (v[min(j + 1, len(v) - 1)] - v[j]) * (i - j)

    return q(lo), q(hi)


def plan_big_run(budget: float, gpus: int, gpu: GPUSpec, *, fits: Fits | None = None,
                 law: str | None = None, base: ModelConfig, global_batch: int = 1536,
                 seq_len: int = 2048, space: SearchSpace | None = None,
                 eff: EfficiencyConfig | None = None) -> RunPlan:
    """Plan a compute-optimal run of ``budget`` FLOPs on ``gpus`` x ``gpu``.

    Args:
        fits: the laws to use; default the Chinchilla paper's.
        law: approach1 / approach2 / approach3; default approach1 (or the first available).
        base: the model family (norm, positions, vocabulary) the shape keeps.
        global_batch, seq_len: sequences per step and their length.
    """
    if not (budget > 0 and math.isfinite(budget)):
        raise ConfigError(f"budget must be a positive number of FLOPs, got {budget}")
    notes = []
    paper = fits is None
    fits = fits or chinchilla_paper_fits()
    if fits.flop_convention not in FlopConvention.__members__:
        raise ConfigError(f"{fits.source}: unknown flop_convention {fits.flop_convention!r}; "
                          f"known: {', '.join(FlopConvention.__members__)}")
    name, power = fits.law(law)
    n_opt, d_opt = power.n_opt(budget), power.d_opt(budget)
    count = law_param_count(fits.flop_convention)
    cfg = hardware_friendly_shape(n_opt, base.merge({"max_seq_len": seq_len}), count=count)
    params = count_params(cfg)
    per_token = train_flops_per_token(cfg, fits.flop_convention, seq_len)
    tokens = budget / per_token
    step_tokens = global_batch * seq_len
    if tokens < step_tokens:
        raise ConfigError(
            f"budget {budget:.3g} FLOPs buys {tokens:.3g} tokens for a {params.total:.3g}-"
            f"parameter model, less than one step of {step_tokens} tokens; raise --budget or "
            f"lower --batch")
    result = search_layouts(cfg, gpus, gpu, global_batch, seq_len, space, eff)
    best = result.feasible[0]
    iterations = math.ceil(tokens / step_tokens)
    seconds = iterations * best.estimate.total_s
    loss, loss_ci, n_ci = _loss_prediction(fits, name, budget, cfg, tokens, count, notes, paper)
    if fits.dropped_bootstrap_rows:
        notes.append(f"{fits.dropped_bootstrap_rows} malformed bootstrap rows ignored")
    return RunPlan(
        budget=budget, law=name, source=fits.source, flop_convention=fits.flop_convention,
        n_opt=n_opt, d_opt=d_opt, model=cfg, params_total=params.total,
        params_non_embedding=params.non_embedding, tokens=tokens, iterations=iterations,
        best=best, n_feasible=len(result.feasible), days=seconds / SECONDS_PER_DAY,
        gpu_hours=seconds * gpus / 3600, loss=loss, loss_interval=loss_ci, n_interval=n_ci,
        notes=tuple(notes),
    )


def _loss_prediction(fits: Fits, law: str, budget: float, cfg: ModelConfig, tokens: float,
                     count: str, notes: list[str], paper: bool):
    """Loss at the planned (N, D) by the Approach-3 law, with 95% bootstrap intervals."""
    if fits.loss is None:
        notes.append("no approach3 fit: no loss prediction")
        return None, None, None
    n = getattr(count_params(cfg), count)
    loss = fits.loss.loss(n, tokens)
    samples = fits.loss.samples()
    if paper:
        notes.append("loss from the Chinchilla paper's Approach 3 (its data and tokenizer)")
    if len(samples) < 2:
        return loss, None, None
    loss_ci = _quantiles([s.loss(n, tokens) for s in samples])
    n_ci = _quantiles([s.frontier().n_opt(budget) for s in samples]) if law == "approach3" \
        else None
    return loss, loss_ci, n_ci
