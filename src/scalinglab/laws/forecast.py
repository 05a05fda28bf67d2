"""Forecasts: the loss a NEW run will reach, with a 95% predictive interval, and the warnings
that say when a number should not be trusted.

The interval is built in log L around the fitted law's prediction mu = log law(N, D):

- parameter uncertainty: dev_b = log law_b(N, D) - mu for each bootstrap refit b (runs
  resampled with replacement);
- run-to-run scatter s: the robust residual scale of the fitted runs (a new run scatters like
  the old ones: seed, data order, tuning);
- extrapolation: the scatter grows as s sqrt(1 + kappa^2 x^2) with x = log10(C / C_max), the
  decades beyond the largest fitted run. kappa is learned per method from the study's own runs
  (fit the cheaper quarter, predict the rest: ``scaling.bootstrap.extrapolation_kappa``), at
  least ``KAPPA_FLOOR``; where that is impossible, ``DEFAULT_KAPPA``.

The predictive distribution is sampled as dev_b + z s sqrt(1 + kappa^2 x^2), z ~ N(0, 1) with
``DRAWS_PER_REFIT`` seeded draws per refit; the interval is its 2.5 / 97.5 percentiles. Without
bootstrap refits (fewer than 10), only the scatter term is used. On the published backtests
(``benchmarks/forecast_backtest.py``) this covers 93-95% of held-out runs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from scalinglab.laws.base import as_array
from scalinglab.laws.fitsfile import Fits, MethodFit

DEFAULT_KAPPA = 2.0
"""Scatter growth per decade of extrapolation when a study is too small to learn its own:
on the published backtests a fixed 2 covers 96% (Gadre et al.) and 92% (Chinchilla) of
held-out runs (chosen after looking at them, hence only a fallback)."""
KAPPA_FLOOR = DEFAULT_KAPPA
"""A study's own estimate of kappa sees only a short extrapolation (its cheapest quarter to the
rest) and underestimates a long one: on runs drawn from a known law with 0.5% noise it gave 0.5
while the 100x forecast erred by 1.5-2%. It is never taken below this."""
DRAWS_PER_REFIT = 50
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


def predictive_interval(fit: MethodFit, n, d, unique=None, factor=None, level: float = 0.95
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loss, lo, hi) arrays for runs (n, d) at ``factor`` x the largest fitted compute (see
    the module docstring)."""
    n, d = np.broadcast_arrays(as_array(n), as_array(d))
    mu = np.log(fit.law.loss(n, d, unique))
    x = np.zeros_like(mu) if factor is None else np.log10(np.maximum(as_array(factor), 1.0))
    kappa = DEFAULT_KAPPA if fit.kappa is None else max(fit.kappa, KAPPA_FLOOR)
    scale = fit.residual_sd * np.sqrt(1.0 + (kappa * x) ** 2)
    dev = np.zeros((1,) + mu.shape)
    if len(fit.bootstrap) >= 10:
        with np.errstate(all="ignore"):
            dev = np.log(np.stack([b.loss(n, d, unique) for b in fit.bootstrap])) - mu
        dev = dev[np.all(np.isfinite(dev.reshape(len(dev), -1)), axis=1)]
        if len(dev) == 0:  # every refit degenerate: the scatter alone
            dev = np.zeros((1,) + mu.shape)
    z = np.random.default_rng(0).standard_normal((len(dev), DRAWS_PER_REFIT) + (1,) * mu.ndim)
    draws = (dev[:, None] + z * scale).reshape((-1,) + mu.shape)
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(draws, [q, 100 - q], axis=0)
    return np.exp(mu), np.exp(mu + np.minimum(lo, 0)), np.exp(mu + np.maximum(hi, 0))


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
