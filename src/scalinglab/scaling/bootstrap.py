"""Every fit of a study with bootstrap intervals, assembled as the ``fits.json`` dictionary.

The bootstrap resamples runs (with replacement, same draws for every approach). Approach 3
and Kaplan refits run as one batched problem weighted by each draw's multiplicities, started
from the distinct minima the full fit found (the full 4500-point grid per replicate would
cost 1000x more and, starting from the full-data minima, lands in the same basins). Draws where
an approach cannot be fitted (e.g. an IsoFLOP budget lost its minimum) are skipped and counted.
Intervals are percentile intervals at ``CI_LEVEL``.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from scalinglab.errors import ScalinglabError
from scalinglab.scaling import parametric
from scalinglab.scaling.fit import Allocation, fit_approach1, fit_approach2
from scalinglab.scaling.fitdata import FitData

CI_LEVEL = 0.95
MIN_RUNS_PARAMETRIC = 6  # a 5-parameter law through fewer runs is not a fit


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


def approach3(data: FitData, idx: np.ndarray, exhaustive: bool = False) -> dict:
    """Approach 3 (Chinchilla's Huber fit from 4500 starts) with bootstrap refits."""
    if len(data) < MIN_RUNS_PARAMETRIC:
        raise ScalinglabError(f"approach 3 needs >= {MIN_RUNS_PARAMETRIC} runs, got {len(data)}")
    law, minima = parametric.fit_approach3(data.params, data.tokens, data.loss,
                                           exhaustive=exhaustive)
    k = data.flops_per_param_token
    out = law.as_dict() | _law_allocation(law, k)
    if len(idx):
        thetas = parametric.refit(parametric.chinchilla_objective, minima[:3], data.params,
                                  data.tokens, data.loss, _weights(idx, len(data)))
        laws = [parametric.ChinchillaLaw.from_theta(t) for t in thetas]
        table = {key: [getattr(x, key) for x in laws] for key in
                 ("E", "A", "B", "alpha", "beta", "a", "b")}
        out["ci"] = {key: percentile_ci(v) for key, v in table.items()}
        out["bootstrap"] = [[x.E, x.A, x.B, x.alpha, x.beta] for x in laws]
    out["huber_delta"] = parametric.HUBER_DELTA
    return out


def _law_allocation(law, k: float) -> dict:
    """a, b, n_coef, d_coef of a parametric law's compute-optimal frontier (C = k N D)."""
    n1, d1 = law.optimal(1.0, k)  # N_opt, D_opt at C = 1 are the coefficients
    return {"a": law.a, "b": law.b, "n_coef": float(n1), "d_coef": float(d1)}


def kaplan(data: FitData, idx: np.ndarray) -> dict:
    """Kaplan et al.'s L(N, D) form with bootstrap refits."""
    if len(data) < MIN_RUNS_PARAMETRIC:
        raise ScalinglabError(f"the Kaplan form needs >= {MIN_RUNS_PARAMETRIC} runs, "
                              f"got {len(data)}")
    law, minima = parametric.fit_kaplan(data.params, data.tokens, data.loss)
    out = law.as_dict() | _law_allocation(law, data.flops_per_param_token)
    if len(idx):
        thetas = parametric.refit(parametric.kaplan_objective, minima[:2], data.params,
                                  data.tokens, data.loss, _weights(idx, len(data)))
        laws = [parametric.KaplanLaw.from_theta(t) for t in thetas]
        out["ci"] = {key: percentile_ci([getattr(x, key) for x in laws])
                     for key in ("N_c", "D_c", "alpha_N", "alpha_D", "a", "b")}
    return out


def fit_all(data: FitData, n_boot: int = 1000, seed: int = 0) -> dict:
    """Every approach that the data allow; one that cannot be fitted records its error."""
    idx = draws(len(data), n_boot, seed)
    out: dict = {"flop_convention": data.flop_convention, "n_runs": len(data),
                 "flops_per_param_token": data.flops_per_param_token, "skipped": data.skipped,
                 "n_bootstrap": n_boot, "ci_level": CI_LEVEL, "seed": seed}
    for name, fn in (("approach1", approach1), ("approach2", approach2),
                     ("approach3", approach3), ("kaplan", kaplan)):
        try:
            out[name] = fn(data, idx)
        except ScalinglabError as e:
            out[name] = {"error": str(e)}
    return out
