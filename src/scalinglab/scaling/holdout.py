"""Trust check: predict the largest IsoFLOP budget from smaller ones, then compare.

Everything is fitted on the runs of the smaller budgets, as if the largest had not been paid
for yet: with ``factor`` k, only runs with C <= C_held / k (so the forecast extrapolates at
least k x in compute); without it, every run cheaper than the geometric midpoint between the
two largest budgets. The prediction for the held-out budget C is the compute-optimal N, D and
loss of the method the training runs' own backtest recommends, with its 95% predictive
interval; the truth is what the held-out runs reached: the best run and the minimum of the
parabola through them. Each held-out run's own loss is also predicted from its (N, D).
"""

from __future__ import annotations

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.io import strict_json
from scalinglab.laws.fitsfile import parse_fits
from scalinglab.laws.forecast import predictive_interval
from scalinglab.scaling.backtest import fit_and_recommend
from scalinglab.scaling.bootstrap import percentile_ci
from scalinglab.scaling.fit import fit_isoflop
from scalinglab.scaling.fitdata import FitData


def split_largest(data: FitData, factor: float | None = None
                  ) -> tuple[FitData, FitData, float]:
    """(train, held-out, held-out budget). Needs >= 3 IsoFLOP budgets, 2 of them to fit."""
    budgets = np.unique(data.budget[np.isfinite(data.budget)])
    if budgets.size < 3:
        raise ScalinglabError(
            f"the trust check needs >= 3 IsoFLOP budgets (2 to fit, 1 to check), "
            f"found {budgets.size}")
    held_c = budgets[-1]
    cutoff = held_c / factor * (1 + 1e-9) if factor else np.sqrt(held_c * budgets[-2])
    held = data.budget == held_c
    train = ~held & (data.flops < cutoff)
    if np.unique(data.budget[train & np.isfinite(data.budget)]).size < 2:
        raise ScalinglabError(f"the trust check at {factor}x needs >= 2 IsoFLOP budgets at or "
                              f"below {cutoff:.3g} FLOPs (largest budget / {factor})")
    return data.subset(train), data.subset(held), float(held_c)


def _pct(pred: float, true: float) -> float:
    return float(100.0 * (pred - true) / true)


def _achieved(held: FitData, c: float) -> dict:
    best = int(np.argmin(held.loss))
    out = {"best_run": {"run_id": held.run_id[best], "params": float(held.params[best]),
                        "tokens": float(held.tokens[best]), "loss": float(held.loss[best])}}
    par = fit_isoflop(c, held.params, held.tokens, held.loss)
    if par is not None:
        out["parabola"] = {"n_opt": par.n_opt, "loss_min": par.loss_min,
                           "interior": par.interior}
    return out


def holdout_largest(data: FitData, n_boot: int = 1000, seed: int = 0,
                    factor: float | None = None) -> dict:
    """Fit on the smaller budgets, predict the largest, and report the errors."""
    train, held, c = split_largest(data, factor)
    fits = parse_fits(strict_json(fit_and_recommend(train, n_boot=n_boot, seed=seed)),
                      "trust check")
    method, fit = fits.frontier(None)
    k = fits.k
    extrapolation = c / float(train.flops.max())
    out: dict = {"budget": c, "n_train_runs": len(train), "n_heldout_runs": len(held),
                 "method": method, "extrapolation": extrapolation,
                 "achieved": _achieved(held, c), "predicted": {}}
    if not fit.law.has_optimum:
        out["error"] = f"the {method} fit has no compute-optimal size: nothing to predict"
        return out
    n, d = (float(v) for v in fit.law.optimum(c, k))
    loss_fit = fits.loss_fit_for(method)
    if loss_fit is None:
        why = "; ".join(f"{m}: {e}" for m, e in fits.errors.items()) or "none fitted"
        out["error"] = (f"no loss law could be fitted on the {len(train)} runs of the smaller "
                        f"budgets ({why})")
        return out
    loss, lo, hi = predictive_interval(loss_fit, n, d, factor=extrapolation)
    pred = {"n_opt": n, "d_opt": d, "loss": float(loss), "loss_ci": [float(lo), float(hi)]}
    if fit.bootstrap:
        pred["n_opt_ci"] = percentile_ci([b.optimum(c, k)[0] for b in fit.bootstrap])
    out["predicted"][method] = pred
    achieved = out["achieved"]["best_run"]["loss"]
    out["loss_error_pct"] = _pct(pred["loss"], achieved)
    out["covered"] = bool(lo <= achieved <= hi)
    par = out["achieved"].get("parabola")
    if par is not None:
        out["loss_error_vs_parabola_pct"] = _pct(pred["loss"], par["loss_min"])
        out["n_opt_ratio"] = pred["n_opt"] / par["n_opt"]
    if loss_fit.law.predicts_runs:
        out["runs"] = _run_predictions(loss_fit, held, float(train.flops.max()))
        out["run_loss_mape_pct"] = float(np.mean([abs(r["error_pct"]) for r in out["runs"]]))
    return out


def _run_predictions(fit, held: FitData, max_flops: float) -> list[dict]:
    """Each held-out run's loss predicted from its (N, D), with the 95% interval."""
    pred, lo, hi = predictive_interval(fit, held.params, held.tokens, held.unique_tokens,
                                       held.flops / max_flops)
    return [{"run_id": held.run_id[i], "params": float(held.params[i]),
             "tokens": float(held.tokens[i]), "loss": float(held.loss[i]),
             "pred": float(pred[i]), "lo": float(lo[i]), "hi": float(hi[i]),
             "error_pct": _pct(float(pred[i]), float(held.loss[i]))}
            for i in range(len(held))]
