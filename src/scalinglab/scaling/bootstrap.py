"""Every fit of a study with bootstrap intervals, assembled as the ``fits.json`` dictionary.

The bootstrap resamples runs (with replacement, same draws for every method). The refits of
the parametric laws (``laws.parametric.FORMS``) run as one batched problem weighted by each
draw's multiplicities, started from the distinct minima the full fit found (the full grid per
replicate would cost 1000x more and, starting from the full-data minima, lands in the same
basins). Draws where a method cannot be fitted (e.g. an IsoFLOP budget lost its minimum) are
skipped and counted. Intervals of the laws' fields are percentile intervals at ``CI_LEVEL``;
the predictive interval of a new run's loss (``laws.forecast``) adds the residual scatter.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from tqdm import tqdm

from scalinglab.errors import ScalinglabError
from scalinglab.laws import parametric
from scalinglab.laws.base import LawError
from scalinglab.laws.fitsfile import LOSS_METHODS, MethodFit, law_entry
from scalinglab.laws.frontier import IsoflopLaw, fit_saturating
from scalinglab.laws.multistart import HUBER_DELTA
from scalinglab.scaling.fit import Allocation, fit_approach1, fit_approach2, isoflop_minima
from scalinglab.scaling.fitdata import FitData

CI_LEVEL = 0.95
MIN_RUNS_PARAMETRIC = 6  # a 5-parameter law through fewer runs is not a fit
KAPPA_SUBFIT_FACTOR = 4.0
KAPPA_MIN_RUNS = 7


def percentile_ci(samples, level: float = CI_LEVEL) -> list[float]:
    """[lo, hi] percentile interval of a 1-D sample (NaNs ignored)."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return [float("nan"), float("nan")]
    q = 100 * (1 - level) / 2
    return [float(np.percentile(s, q)), float(np.percentile(s, 100 - q))]


def draws(n_runs: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_runs) run indices, each row one resample with replacement."""
    return np.random.default_rng(seed).integers(0, n_runs, size=(n_boot, n_runs))


def _allocation_dict(alloc: Allocation) -> dict:
    return {"a": alloc.n_law.exponent, "b": alloc.d_law.exponent, "n_coef": alloc.n_law.coef,
            "d_coef": alloc.d_law.coef}


def _boot_allocation(fit, idx: np.ndarray, desc: str) -> tuple[dict, list]:
    """Run ``fit(rows) -> (Allocation, extra)`` on every draw: CIs of a and b, the fitted
    laws as ``bootstrap`` rows [n_coef, a, d_coef, b] (for N_opt bands), and the extras."""
    laws, extras = [], []
    for rows in tqdm(idx, desc=desc, leave=False, disable=None):
        try:
            alloc, extra = fit(rows)
        except ScalinglabError:
            continue
        laws.append([alloc.n_law.coef, alloc.n_law.exponent, alloc.d_law.coef,
                     alloc.d_law.exponent])
        extras.append(extra)
    table = np.array(laws).reshape(-1, 4)  # (B_ok, 4) as n_coef, a, d_coef, b
    return {"a_ci": percentile_ci(table[:, 1]), "b_ci": percentile_ci(table[:, 3]),
            "n_bootstrap_ok": len(laws), "bootstrap": laws}, extras


def approach1(data: FitData, idx: np.ndarray) -> dict:
    """Approach 1 with bootstrap over runs (their whole curves)."""
    alloc = fit_approach1(data.curves)
    out = _allocation_dict(alloc)
    out["points"] = [{"flops": float(c), "n_opt": float(n), "d_opt": float(d)}
                     for c, n, d in zip(alloc.flops, alloc.n_opt, alloc.d_opt, strict=True)]
    ci, _ = _boot_allocation(
        lambda rows: (fit_approach1([data.curves[i] for i in rows]), None), idx, "approach 1")
    return out | ci


def approach2(data: FitData, idx: np.ndarray) -> dict:
    """Approach 2 with bootstrap; each budget's N_opt gets its own interval too."""
    def fit(rows):
        return fit_approach2(data.budget[rows], data.params[rows], data.tokens[rows],
                             data.loss[rows])

    alloc, minima = fit(np.arange(len(data)))
    ci, extras = _boot_allocation(
        lambda rows: (lambda r: (r[0], {m.budget: m.n_opt for m in r[1]}))(fit(rows)),
        idx, "approach 2")
    out = _allocation_dict(alloc) | ci
    out["minima"] = [{"budget": m.budget, "n_opt": m.n_opt, "d_opt": m.d_opt,
                      "loss_min": m.loss_min, "interior": m.interior,
                      "n_opt_ci": percentile_ci([e.get(m.budget, np.nan) for e in extras])}
                     for m in minima]
    out["parabolas"] = [{"budget": m.budget, "coef": list(m.coef)} for m in minima]
    out["parabola_x"] = "log10(params)"
    return out


def _weights(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) multiplicities of each run in each draw."""
    return np.stack([np.bincount(rows, minlength=n) for rows in idx]).astype(np.float64)


def residual_sd(law, data: FitData, n_params: int = 0) -> float:
    """Robust scatter of log L around the law: 1.4826 x the median absolute deviation of the
    residuals (the Huber fit shrugs off outliers, so they must not set the run-to-run noise),
    times sqrt(n / (n - p)) for the p fitted parameters."""
    r = np.log(data.loss) - np.log(law.loss(data.params, data.tokens, data.unique_tokens))
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 0.0
    mad = float(1.4826 * np.median(np.abs(r - np.median(r))))
    return mad * float(np.sqrt(r.size / max(r.size - n_params, 1)))


def extrapolation_kappa(fit_fn, data: FitData, sd: float) -> float | None:
    """How fast a method's errors grow with extrapolation, learned from its own runs.

    Refit on the runs with C <= C_max / ``KAPPA_SUBFIT_FACTOR`` and predict the others; their
    log errors e_j should scatter as N(0, s^2 (1 + kappa^2 x_j^2)), x_j = log10(C_j / max C of
    the sub-fit). kappa is set robustly, like the MAD: the median of |e_j| / sqrt(1 + kappa^2
    x_j^2) must equal that of |N(0, s^2)|, 0.6745 s (a likelihood fit let one outlier run
    make kappa huge). None when the sub-fit has fewer than ``KAPPA_MIN_RUNS`` runs or fails
    (``forecast.DEFAULT_KAPPA`` is used then).
    """
    sub = data.flops <= data.flops.max() / KAPPA_SUBFIT_FACTOR
    if sub.sum() < KAPPA_MIN_RUNS or sub.all() or sd <= 0:
        return None
    try:
        law = fit_fn(data.subset(sub))
    except ScalinglabError:
        return None
    held = data.subset(~sub)
    e = np.abs(np.log(held.loss) - np.log(law.loss(held.params, held.tokens,
                                                   held.unique_tokens)))
    x = np.maximum(np.log10(held.flops / data.flops[sub].max()), 0.0)
    if not np.all(np.isfinite(e)):
        return None
    target = 0.6745 * sd

    def excess(log_k: float) -> float:
        return float(np.median(e / np.sqrt(1 + (np.exp(log_k) * x) ** 2))) - target

    if excess(-6.0) <= 0:
        return 0.0
    if excess(4.0) >= 0:
        return float(np.exp(4.0))
    return float(np.exp(brentq(excess, -6.0, 4.0, xtol=1e-3)))


def parametric_fit(method: str, data: FitData, idx: np.ndarray) -> MethodFit:
    """One parametric law (``laws.parametric.FORMS``) on the runs its form selects, with
    bootstrap refits from its minima and the extrapolation rate of its errors."""
    form = parametric.FORMS[method]
    keep = form.selects(data.params, data.tokens)
    # a resample of all runs, restricted to the selected ones: the same pipeline per draw
    weights = _weights(idx, len(data))[:, keep] if len(idx) else None
    data = data.subset(keep)
    if len(data) < MIN_RUNS_PARAMETRIC:
        kept = f" with D/N >= {form.min_tokens_per_param:g}" if form.min_tokens_per_param else ""
        raise LawError(f"{method} needs >= {MIN_RUNS_PARAMETRIC} runs{kept}, got {len(data)}")
    if np.unique(data.params).size < 2 or np.unique(data.tokens).size < 2:
        raise LawError(f"{method} needs runs at >= 2 model sizes and >= 2 token counts")
    if method == "data_constrained" and not data.repeats_data:
        raise LawError("data_constrained: no run repeats its data (no unique_tokens < tokens)")
    args = (data.params, data.tokens, data.loss)
    law, minima = form.fit(*args, unique=data.unique_tokens)
    boot = form.refit(minima[:3], *args, weights, unique=data.unique_tokens) \
        if weights is not None else []
    sd = residual_sd(law, data, len(minima[0]))
    kappa = extrapolation_kappa(
        lambda sub: form.fit(sub.params, sub.tokens, sub.loss, unique=sub.unique_tokens)[0],
        data, sd)
    return MethodFit(method, law, tuple(boot), sd, len(data), kappa)


def isoflop_fit(data: FitData, idx: np.ndarray) -> MethodFit:
    """The IsoFLOP-minima route: Approach 2's N_opt(C) and L*(C) = E + A C^-gamma through the
    parabolas' minima, refitted on every draw that keeps >= 3 budgets with a minimum."""
    def fit(rows):
        alloc, minima = fit_approach2(data.budget[rows], data.params[rows], data.tokens[rows],
                                      data.loss[rows])
        e, a, gamma, c_ref = fit_saturating([m.budget for m in minima],
                                            [m.loss_min for m in minima])
        return IsoflopLaw(E=e, A=a, gamma=gamma, n_coef=alloc.n_law.coef,
                          a=alloc.n_law.exponent, k=data.flops_per_param_token, c_ref=c_ref)

    try:
        law = fit(np.arange(len(data)))
    except ScalinglabError as e:
        raise LawError(f"isoflop: {str(e).removeprefix('isoflop: ')}") from None
    boot = []
    for rows in tqdm(idx, desc="isoflop", leave=False, disable=None):
        try:
            boot.append(fit(rows))
        except ScalinglabError:
            continue
    on_frontier = np.isfinite(data.budget)
    minima = isoflop_minima(data.budget, data.params, data.tokens, data.loss)
    r = [np.log(m.loss_min / law.optimal_loss(m.budget)) for m in minima if m is not None]
    sd = float(1.4826 * np.median(np.abs(r))) if r else 0.0
    return MethodFit("isoflop", law, tuple(boot), sd, int(on_frontier.sum()), None)


def _method_entry(fit: MethodFit, k: float) -> dict:
    out = law_entry(fit, k)
    if fit.bootstrap:
        keys = [*fit.law.params(), *(("a", "b") if hasattr(fit.law, "b") else ())]
        out["ci"] = {key: percentile_ci([getattr(b, key) for b in fit.bootstrap])
                     for key in keys}
    return out


def fitted_range(data: FitData) -> dict:
    return {"max_flops": float(data.flops.max()), "min_flops": float(data.flops.min()),
            "min_params": float(data.params.min()), "max_params": float(data.params.max()),
            "min_tokens": float(data.tokens.min()), "max_tokens": float(data.tokens.max())}


def fit_methods(data: FitData, idx: np.ndarray, methods=LOSS_METHODS) -> dict:
    """Every loss law in ``methods``: name -> MethodFit, or the LawError that stopped it."""
    out: dict = {}
    for name in methods:
        try:
            out[name] = isoflop_fit(data, idx) if name == "isoflop" else parametric_fit(
                name, data, idx)
        except LawError as e:
            out[name] = e
    return out


def fit_all(data: FitData, n_boot: int = 1000, seed: int = 0) -> dict:
    """Every method that the data allow; one that cannot be fitted records its error."""
    idx = draws(len(data), n_boot, seed)
    k = data.flops_per_param_token
    out: dict = {"flop_convention": data.flop_convention, "n_runs": len(data),
                 "flops_per_param_token": k, "skipped": data.skipped,
                 "n_bootstrap": n_boot, "ci_level": CI_LEVEL, "seed": seed,
                 "range": fitted_range(data), "huber_delta": HUBER_DELTA}
    for name, fn in (("approach1", approach1), ("approach2", approach2)):
        try:
            out[name] = fn(data, idx)
        except ScalinglabError as e:
            out[name] = {"error": str(e)}
    for name, fit in fit_methods(data, idx).items():
        out[name] = {"error": str(fit)} if isinstance(fit, Exception) else _method_entry(fit, k)
    return out
