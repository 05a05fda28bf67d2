"""Backtests: fit on the cheaper runs, predict the expensive ones, score the forecast.

For each extrapolation factor k, every method is fitted on the runs with C <= C_max / k (or
N <= N_max / k with ``split="params"``) and predicts every other run. Per method and k: the
held-out runs, the median and max absolute relative error of their losses, the coverage of
the 95% predictive interval (share of held-out runs inside it) and its median width, and,
where held-out runs form an IsoFLOP budget (>= 3 sizes), the error on that budget's
compute-optimal loss (the parabola's minimum against the law's optimum).

``recommend`` turns a backtest inside a study's own runs into the method ``predict``,
``allocate`` and ``plan run`` use by default.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import MethodFit
from scalinglab.laws.forecast import predictive_interval
from scalinglab.scaling.bootstrap import draws, fit_all, fit_methods
from scalinglab.scaling.fit import fit_isoflop
from scalinglab.scaling.fitdata import FitData

DEFAULT_FACTORS = (2, 4, 8, 16, 32, 100, 300)
DEFAULT_METHODS = ("approach3", "approach3_tied", "kaplan", "isoflop", "data_constrained")
AUTO_FACTORS = (2, 4, 8, 16, 32)
PREFERRED = "approach3_tied"
OVERRIDE_MARGIN = 0.2
RECOMMENDABLE = ("approach3_tied", "approach3", "data_constrained")
"""Laws a study's own backtest may recommend. Kaplan's form is fitted and scored but never
recommended: on the published runs it misses the 6.9B runs by 15-18% from every cut, yet a
handful of cheap runs can make it look best (``benchmarks/forecast_backtest.py``)."""
MIN_TRAIN_RUNS = 6


@dataclasses.dataclass
class MethodScore:
    """One method at one factor: per held-out run predictions and their summary."""

    method: str
    factor: float
    run_id: list[str]
    truth: np.ndarray
    pred: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    optimal: list[dict]
    """Per held-out IsoFLOP budget: {budget, truth, pred, error_pct}."""
    predicts_runs: bool = True
    error: str | None = None
    picked: str | None = None
    """For ``auto``: the method the training runs' own backtest chose."""

    @property
    def rel_err(self) -> np.ndarray:
        return (self.pred - self.truth) / self.truth

    def summary(self) -> dict:
        if self.error:
            return {"method": self.method, "factor": self.factor, "error": self.error}
        out = {"method": self.method, "factor": self.factor, "n_heldout": int(self.truth.size)}
        if self.picked:
            out["picked"] = self.picked
        if self.predicts_runs and self.truth.size:
            e = np.abs(self.rel_err) * 100
            inside = (self.truth >= self.lo) & (self.truth <= self.hi)
            out |= {"median_abs_err_pct": float(np.median(e)), "max_abs_err_pct": float(e.max()),
                    "coverage": float(inside.mean()),
                    "median_width_pct": float(np.median((self.hi - self.lo) / self.pred) * 100)}
        if self.optimal:
            out["optimal_loss_err_pct"] = [round(o["error_pct"], 3) for o in self.optimal]
        return out

    def runs(self) -> list[dict]:
        return [{"run_id": r, "truth": float(t), "pred": float(p), "lo": float(lo),
                 "hi": float(hi), "error_pct": float(100 * (p - t) / t),
                 "covered": bool(lo <= t <= hi)}
                for r, t, p, lo, hi in zip(self.run_id, self.truth, self.pred, self.lo,
                                           self.hi, strict=True)]


def split(data: FitData, factor: float, by: str = "compute") -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, held-out) for extrapolation ``factor``."""
    x = {"compute": data.flops, "params": data.params}.get(by)
    if x is None:
        raise ScalinglabError(f"--split must be compute or params, got {by!r}")
    train = x <= x.max() / factor
    return train, ~train


def _optimal_scores(fit: MethodFit, held: FitData, k: float) -> list[dict]:
    out = []
    for c in np.unique(held.budget[np.isfinite(held.budget)]):
        sel = held.budget == c
        par = fit_isoflop(c, held.params[sel], held.tokens[sel], held.loss[sel])
        if par is None or not par.interior or not fit.law.has_optimum:
            continue
        n, d = fit.law.optimum(c, k)
        pred = float(fit.law.loss(n, d))
        out.append({"budget": float(c), "truth": par.loss_min, "pred": pred,
                    "error_pct": 100 * (pred - par.loss_min) / par.loss_min})
    return out


def score_split(train: FitData, held: FitData, methods=DEFAULT_METHODS, n_boot: int = 200,
                seed: int = 0, factor: float = float("nan")) -> list[MethodScore]:
    """Fit every method on ``train`` and score its predictions of ``held``.

    The pseudo-method ``auto`` is what the product does: it picks a method by a backtest
    inside ``train`` alone (``recommend``), then predicts with it; its score is named
    ``auto`` and records the pick in ``picked``."""
    if "auto" in methods:
        base = [m for m in methods if m != "auto"]
        inner = backtest(train, factors=AUTO_FACTORS, methods=base, n_boot=min(n_boot, 50),
                         seed=seed)
        rec = recommend(inner)
        pick = rec["method"] if rec else "approach3"
        scores = score_split(train, held, tuple(dict.fromkeys([*base, pick])), n_boot, seed,
                             factor)
        chosen = next(s for s in scores if s.method == pick)
        return [*scores, dataclasses.replace(chosen, method="auto", picked=pick)]
    if len(train) < MIN_TRAIN_RUNS:
        return [MethodScore(m, factor, [], np.array([]), np.array([]), np.array([]),
                            np.array([]), [], error=f"only {len(train)} runs to fit")
                for m in methods]
    fits = fit_methods(train, draws(len(train), n_boot, seed), methods)
    k = train.flops_per_param_token
    max_c = float(train.flops.max())
    out = []
    for name in methods:
        fit = fits[name]
        if isinstance(fit, Exception):
            out.append(MethodScore(name, factor, [], np.array([]), np.array([]), np.array([]),
                                   np.array([]), [], error=str(fit)))
            continue
        pred, lo, hi = predictive_interval(fit, held.params, held.tokens, held.unique_tokens,
                                           held.flops / max_c)
        out.append(MethodScore(name, factor, list(held.run_id), held.loss.copy(), pred, lo, hi,
                               _optimal_scores(fit, held, k), fit.law.predicts_runs))
    return out


def backtest(data: FitData, factors=DEFAULT_FACTORS, methods=DEFAULT_METHODS,
             by: str = "compute", n_boot: int = 200, seed: int = 0,
             progress=None) -> list[MethodScore]:
    """``score_split`` at every factor that leaves >= MIN_TRAIN_RUNS runs to fit and some to
    predict; ``progress(factor)`` is called before each."""
    out = []
    for f in factors:
        train, held = split(data, f, by)
        if train.sum() < MIN_TRAIN_RUNS or not held.any():
            continue
        if progress:
            progress(f)
        out += score_split(data.subset(train), data.subset(held), methods, n_boot, seed, f)
    return out


def recommend(scores: list[MethodScore], max_err_pct: float = 2.0) -> dict | None:
    """The method that extrapolated best in ``scores`` (a backtest inside the user's runs).

    Each ``RECOMMENDABLE`` method's score is its median absolute error over every factor it
    could be scored at.
    ``PREFERRED`` (what the published backtests support) is kept unless another method's
    score is lower by more than ``OVERRIDE_MARGIN``: a handful of cheap runs is weak evidence
    against a law that held on real runs, and a noisy internal backtest picked badly on them
    (``benchmarks/forecast_backtest.py``, method ``auto``). The supported factor is the largest
    k at which the chosen method's median error stayed within ``max_err_pct`` and its
    interval covered at least half of the held-out runs.
    """
    by_method: dict[str, list[dict]] = {}
    for s in scores:
        if s.error is None:
            by_method.setdefault(s.method, []).append(s.summary())
    errs = {}
    for m, rows in by_method.items():
        if m not in RECOMMENDABLE:
            continue
        e = [r["median_abs_err_pct"] for r in rows if "median_abs_err_pct" in r]
        if e:
            errs[m] = float(np.median(e))
    if not errs:
        return None
    best = min(errs, key=errs.get)
    reason = (f"lowest median error ({errs[best]:.2f}%) predicting the study's own larger runs "
              "from its smaller ones")
    if best != PREFERRED and PREFERRED in errs and errs[best] > (1 - OVERRIDE_MARGIN) * errs[
            PREFERRED]:
        best = PREFERRED
        reason = (f"the default law ({errs[best]:.2f}% median error in the study's own "
                  f"backtest; no other law was more than {OVERRIDE_MARGIN:.0%} better)")
    ok = [r["factor"] for r in by_method[best] if r.get("median_abs_err_pct", np.inf)
          <= max_err_pct and r.get("coverage", 0) >= 0.5]
    return {"method": best, "median_abs_err_pct": errs[best],
            "supported_factor": max(ok) if ok else None,
            "factors": [r["factor"] for r in by_method[best]],
            "scores": {m: rows for m, rows in by_method.items()}, "reason": reason}


SELF_BACKTEST_FACTORS = (2, 4, 8, 16, 32, 100)
SELF_BACKTEST_BOOT = 100


def self_backtest(data: FitData, seed: int = 0, n_boot: int = SELF_BACKTEST_BOOT) -> dict:
    """The backtest inside the study's own runs and the method it recommends (``recommended``
    in fits.json; the default law, with the reason, when no factor leaves enough runs)."""
    scores = backtest(data, factors=SELF_BACKTEST_FACTORS, n_boot=n_boot, seed=seed)
    rec = recommend(scores)
    if rec is None:
        return {"method": PREFERRED, "supported_factor": None,
                "reason": "no backtest possible (too few runs below the largest budgets); "
                          "the default law"}
    return rec


def fit_and_recommend(data: FitData, n_boot: int = 1000, seed: int = 0) -> dict:
    """Every fit of ``data`` (``bootstrap.fit_all``) plus ``recommended``: the method the
    study's own backtest picks, or Approach 3 when that method cannot be fitted here."""
    fits = fit_all(data, n_boot=n_boot, seed=seed)
    rec = self_backtest(data, seed, min(n_boot, SELF_BACKTEST_BOOT))
    if "error" in fits.get(rec["method"], {}):
        rec = {"method": "approach3", "supported_factor": None,
               "reason": f"{rec['method']} cannot be fitted on these runs "
                         f"({fits[rec['method']]['error']}); Approach 3 instead"}
    fits["recommended"] = rec
    return fits
