"""Compute-optimal allocation: N_opt, D_opt, tokens per parameter and loss for a budget C.

Sources, side by side: the laws fitted to a study (a ``laws.fitsfile.Fits``, read from
fits.json) and the published ones (``laws.paper``). Approaches 1 and 2 predict no loss, so
their rows take it from the study's recommended loss law (the paper's Approach 3 for
published rows). Every fitted row says how far it extrapolates (budget over the largest
fitted run's compute) and carries the warnings of ``laws.forecast.forecast_warnings``.
"""

from __future__ import annotations

import dataclasses
import math

from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import FRONTIER_METHODS, LOSS_METHODS, Fits, MethodFit
from scalinglab.laws.forecast import forecast_warnings, predictive_interval
from scalinglab.laws.paper import paper_laws
from scalinglab.scaling.bootstrap import percentile_ci


@dataclasses.dataclass(frozen=True)
class Source:
    """One way to allocate a budget: the law for N_opt and the one for the loss."""

    name: str
    frontier: MethodFit
    loss: MethodFit | None
    k: float = 6.0
    fits: Fits | None = None  # the study's fits (None for published laws)


def fitted_sources(fits: Fits) -> list[Source]:
    """A source per fitted method, the recommended one first."""
    names = [m for m in (*FRONTIER_METHODS, *LOSS_METHODS) if m in fits.methods]
    if fits.recommended in names:
        names.remove(fits.recommended)
        names.insert(0, fits.recommended)
    out = []
    for m in names:
        tag = " (recommended)" if m == fits.recommended else ""
        out.append(Source(f"fit: {m}{tag}", fits.methods[m], fits.loss_fit_for(m), fits.k, fits))
    return out


def paper_sources() -> list[Source]:
    """The published laws (C = 6 N D, total parameters)."""
    return [Source(name, MethodFit("paper", law), MethodFit("paper", loss))
            for name, (law, loss) in paper_laws().items()]


def _ci(fit: MethodFit, flops: float, k: float) -> dict:
    if len(fit.bootstrap) < 10:
        return {}
    opt = [b.optimum(flops, k) for b in fit.bootstrap]
    return {"n_opt_ci": percentile_ci([o[0] for o in opt]),
            "d_opt_ci": percentile_ci([o[1] for o in opt])}


def allocate_one(src: Source, flops: float) -> dict:
    """N_opt, D_opt, D/N and predicted loss (with its predictive interval) for one source."""
    n, d = (float(v) for v in src.frontier.law.optimum(flops, src.k))
    row = {"source": src.name, "method": src.frontier.method, "n_opt": n, "d_opt": d,
           "tokens_per_param": d / n if n > 0 else float("nan"), "loss": None}
    if src.loss is not None and n == n:
        factor = flops / src.fits.range.max_flops if src.fits and src.fits.range else None
        loss, lo, hi = predictive_interval(src.loss, n, d, factor=factor)
        row["loss"] = float(loss)
        if src.fits is not None:
            row["loss_ci"] = [float(lo), float(hi)]
    if src.fits is not None:
        row |= _ci(src.frontier, flops, src.k)
        row["extrapolation"] = flops / src.fits.range.max_flops if src.fits.range else None
        row["warnings"] = forecast_warnings(src.fits, flops, n, d)
    return row


def allocate(flops: float, fits: Fits | None = None) -> list[dict]:
    """One row per source (fitted first, then published) for budget ``flops``."""
    if not flops > 0:
        raise ScalinglabError(f"budget must be a positive number of FLOPs, got {flops}")
    sources = (fitted_sources(fits) if fits else []) + paper_sources()
    return [allocate_one(s, flops) for s in sources]


def optimal_budget(src: Source, params: float) -> float:
    """The compute C for which ``params`` is compute-optimal under one source (N_opt ~ C^a)."""
    n1, _ = src.frontier.law.optimum(1.0, src.k)
    n10, _ = src.frontier.law.optimum(10.0, src.k)
    a = math.log10(n10 / n1)
    return float((params / n1) ** (1.0 / a))


def size_table(sizes: list[float], fits: Fits | None = None) -> list[dict]:
    """Chinchilla Table 3 style: for each model size, the FLOPs and tokens that make it
    compute-optimal (D = C / (k N)) and the predicted loss, for every source."""
    sources = (fitted_sources(fits) if fits else []) + paper_sources()
    rows = []
    for s in sources:
        for n in sizes:
            c = optimal_budget(s, n)
            d = c / (s.k * n)
            rows.append({"source": s.name, "params": float(n), "flops": c, "tokens": d,
                         "loss": float(s.loss.law.loss(n, d)) if s.loss else None})
    return rows
