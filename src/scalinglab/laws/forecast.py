"""Forecasts: the loss a NEW run will reach, with a 95% predictive interval, and the warnings
that say when a number should not be trusted.

The interval is built in log L around the fitted law's prediction mu = log law(N, D):

- parameter uncertainty: the 2.5 / 97.5 percentiles of log law_b(N, D) - mu over the bootstrap
  refits b (resampled runs);
- run-to-run scatter: the residual scale s of the fitted runs (a new run scatters like the old
  ones: seed, data order, tuning), as +/- z s;
- extrapolation: both grow with the distance beyond the fitted runs, which the bootstrap alone
  underestimates (every refit shares the same cheap runs). The scatter term is widened by
  ``1 + WIDEN_PER_DECADE x log10(C / C_max)`` for C beyond the largest fitted compute C_max.

The two terms add in quadrature on each side. ``WIDEN_PER_DECADE`` was chosen on the backtests
of the two published studies (``benchmarks/forecast_backtest.py`` prints coverage and width).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from scalinglab.laws.base import as_array
from scalinglab.laws.fitsfile import Fits, MethodFit

Z95 = 1.959964
WIDEN_PER_DECADE = 1.0
MIN_TOKENS_PER_PARAM, MAX_TOKENS_PER_PARAM = 1.0, 1e4


@dataclasses.dataclass(frozen=True)
class Prediction:
    params: float
    tokens: float
    loss: float
    lo: float
    hi: float
    extrapolation: float | None
    """Compute of this point over the largest fitted run's (None when the range is unknown)."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def extrapolation_factor(flops, max_flops: float | None):
    if max_flops is None or not max_flops > 0:
        return None
    return as_array(flops) / max_flops


def predictive_interval(fit: MethodFit, n, d, unique=None, factor=None, level_z: float = Z95
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loss, lo, hi) arrays for runs (n, d): see the module docstring."""
    n, d = np.broadcast_arrays(as_array(n), as_array(d))
    mu = np.log(fit.law.loss(n, d, unique))
    lo_b = hi_b = np.zeros_like(mu)
    if len(fit.bootstrap) >= 10:
        with np.errstate(all="ignore"):
            boot = np.log(np.stack([b.loss(n, d, unique) for b in fit.bootstrap])) - mu
        boot = np.where(np.isfinite(boot), boot, np.nan)
        lo_b = np.maximum(-np.nanpercentile(boot, 2.5, axis=0), 0.0)
        hi_b = np.maximum(np.nanpercentile(boot, 97.5, axis=0), 0.0)
    decades = np.zeros_like(mu) if factor is None else np.log10(np.maximum(as_array(factor), 1))
    s = level_z * fit.residual_sd * (1.0 + WIDEN_PER_DECADE * decades)
    lo = mu - np.sqrt(lo_b**2 + s**2)
    hi = mu + np.sqrt(hi_b**2 + s**2)
    return np.exp(mu), np.exp(lo), np.exp(hi)


def predict(fits: Fits, params, tokens, method: str | None = None, unique=None
            ) -> tuple[str, list[Prediction]]:
    """Predicted loss with its 95% predictive interval for each (N, D) pair."""
    fit = fits.method(method)
    n, d = np.broadcast_arrays(as_array(params), as_array(tokens))
    factor = extrapolation_factor(fits.k * n * d, fits.range.max_flops if fits.range else None)
    loss, lo, hi = predictive_interval(fit, n, d, unique, factor)
    preds = [Prediction(float(n[i]), float(d[i]), float(loss[i]), float(lo[i]), float(hi[i]),
                        None if factor is None else float(factor[i])) for i in range(n.size)]
    return fit.method, preds


def forecast_warnings(fits: Fits, flops: float, n: float | None = None,
                      d: float | None = None) -> list[str]:
    """One-line warnings for a forecast at compute ``flops`` (and allocation N, D)."""
    out = []
    rng = fits.range
    if rng is not None:
        factor = flops / rng.max_flops
        supported = fits.supported_factor()
        if supported is not None and factor > supported:
            out.append(f"extrapolates {factor:.3g}x beyond the largest fitted run; the study's "
                       f"own backtest supports {supported:.3g}x: do not trust this number")
        elif supported is None and factor > 10:
            out.append(f"extrapolates {factor:.3g}x beyond the largest fitted run, and no "
                       "backtest supports any factor (fit the study with >= 3 budgets)")
        if n is not None and math.isfinite(n) and n < rng.min_params:
            out.append(f"N = {n:.3g} is below the smallest fitted model ({rng.min_params:.3g}): "
                       "the law is outside its data")
    if n is not None and d is not None and n > 0 and math.isfinite(d / n):
        ratio = d / n
        if not MIN_TOKENS_PER_PARAM <= ratio <= MAX_TOKENS_PER_PARAM:
            out.append(f"{ratio:.3g} tokens per parameter is outside "
                       f"{MIN_TOKENS_PER_PARAM:g}..{MAX_TOKENS_PER_PARAM:g}: an absurd "
                       "allocation, the fit is not to be trusted")
    return out
