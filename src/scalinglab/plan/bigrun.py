"""The plan for the big run: budget -> compute-optimal N and D -> shape -> layout -> memory ->
days and GPU-hours -> predicted loss (with an interval when the fits carry bootstrap samples)."""

from __future__ import annotations

import dataclasses
import math

from scalinglab.config import ConfigError
from scalinglab.laws.fitsfile import Fits, paper_fits
from scalinglab.laws.forecast import forecast_warnings, predictive_interval
from scalinglab.model.accounting import (
    FlopConvention,
    count_params,
    law_param_count,
    train_flops_per_token,
)
from scalinglab.model.config import ModelConfig
from scalinglab.plan.depth_width import hardware_friendly_shape
from scalinglab.plan.hardware import GPUSpec
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
        law: approach1 / approach2 or a loss law (approach3, ...); default the recommended one
            (or the first of approach1, approach2, approach3).
        base: the model family (norm, positions, vocabulary) the shape keeps.
        global_batch, seq_len: sequences per step and their length.
    """
    if not (budget > 0 and math.isfinite(budget)):
        raise ConfigError(f"budget must be a positive number of FLOPs, got {budget}")
    notes = []
    paper = fits is None
    fits = fits or paper_fits()
    if fits.flop_convention not in FlopConvention.__members__:
        raise ConfigError(f"{fits.source}: unknown flop_convention {fits.flop_convention!r}; "
                          f"known: {', '.join(FlopConvention.__members__)}")
    name, n_opt, d_opt = fits.optimum(law, budget)
    if not (n_opt > 0 and math.isfinite(n_opt)):
        raise ConfigError(f"{fits.source}: the {name} law has no compute-optimal size "
                          "(an exponent <= 0); choose another with --law")
    if not paper:
        notes.extend(forecast_warnings(fits, budget, n_opt, d_opt))
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
    """Loss at the planned (N, D) with its 95% predictive interval (``laws.forecast``)."""
    loss_fit = fits.loss_fit_for(law)
    if loss_fit is None:
        notes.append("no loss law fitted: no loss prediction")
        return None, None, None
    n = getattr(count_params(cfg), count)
    factor = budget / fits.range.max_flops if fits.range else None
    loss, lo, hi = (float(v) for v in predictive_interval(loss_fit, n, tokens, factor=factor))
    if paper:
        notes.append("loss from the Chinchilla paper's Approach 3 (its data and tokenizer)")
        return loss, None, None
    if factor is not None:
        notes.append(f"extrapolates {factor:.3g}x beyond the largest fitted run; loss by "
                     f"{loss_fit.method}")
    frontier = fits.methods[law]
    n_ci = _quantiles([b.optimum(budget, fits.k)[0] for b in frontier.bootstrap]) \
        if len(frontier.bootstrap) >= 2 else None
    return loss, (lo, hi), n_ci
