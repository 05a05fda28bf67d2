"""Trust check: predict the largest IsoFLOP budget from the smaller ones, then compare.

Everything is fitted on the runs of the smaller budgets (and any other run cheaper than the
geometric midpoint between the two largest budgets), as if the largest budget had not been
paid for yet. The prediction for the held-out budget C is the compute-optimal N, D and loss of
the fitted laws (Approach 3 with its bootstrap interval; Approach 2's N_opt with Approach 3's
loss at it); the truth is what the held-out runs reached: the best run and the minimum of the
parabola through them. Each held-out run's own loss is also predicted from its (N, D).
"""

from __future__ import annotations

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.scaling.bootstrap import fit_all, percentile_ci
from scalinglab.scaling.fit import fit_isoflop
from scalinglab.scaling.fitdata import FitData
from scalinglab.scaling.parametric import ChinchillaLaw


def split_largest(data: FitData) -> tuple[FitData, FitData, float]:
    """(train, held-out, held-out budget). Needs >= 3 IsoFLOP budgets."""
    budgets = np.unique(data.budget[np.isfinite(data.budget)])
    if budgets.size < 3:
        raise ScalinglabError(
            f"--holdout-largest needs >= 3 IsoFLOP budgets (2 to fit, 1 to check), "
            f"found {budgets.size}")
    held_c, next_c = budgets[-1], budgets[-2]
    cutoff = np.sqrt(held_c * next_c)
    held = data.budget == held_c
    train = ~held & (data.flops < cutoff)
    return data.subset(train), data.subset(held), float(held_c)


def _pct(pred: float, true: float) -> float:
    return float(100.0 * (pred - true) / true)


def holdout_largest(data: FitData, n_boot: int = 1000, seed: int = 0) -> dict:
    """Fit on all but the largest budget, predict it, and report the errors."""
    train, held, c = split_largest(data)
    fits = fit_all(train, n_boot, seed)
    k = train.flops_per_param_token
    best = int(np.argmin(held.loss))
    out: dict = {"budget": c, "n_train_runs": len(train), "n_heldout_runs": len(held),
                 "achieved": {"best_run": {"run_id": held.run_id[best],
                                           "params": float(held.params[best]),
                                           "tokens": float(held.tokens[best]),
                                           "loss": float(held.loss[best])}},
                 "predicted": {}}
    par = fit_isoflop(c, held.params, held.tokens, held.loss)
    if par is not None:
        out["achieved"]["parabola"] = {"n_opt": par.n_opt, "loss_min": par.loss_min,
                                       "interior": par.interior}
    a3 = fits.get("approach3", {})
    if "E" not in a3:
        out["error"] = a3.get("error", "approach 3 could not be fitted")
        return out
    law = ChinchillaLaw(*(a3[x] for x in ("E", "A", "B", "alpha", "beta")))
    if not law.has_optimum:
        out["error"] = (f"the approach 3 fit has no compute-optimal size (alpha "
                        f"{law.alpha:.3g}, beta {law.beta:.3g}): nothing to predict")
        return out
    n, d = law.optimal(c, k)
    pred3 = {"n_opt": float(n), "d_opt": float(d), "loss": float(law.loss(n, d))}
    boot = [ChinchillaLaw(*row) for row in a3.get("bootstrap", [])]
    if boot:
        opt = [b.optimal(c, k) for b in boot]
        pred3["n_opt_ci"] = percentile_ci([o[0] for o in opt])
        pred3["loss_ci"] = percentile_ci([b.loss(*o) for b, o in zip(boot, opt, strict=True)])
    out["predicted"]["approach3"] = pred3
    a2 = fits.get("approach2", {})
    if "a" in a2:
        n2 = a2["n_coef"] * c ** a2["a"]
        out["predicted"]["approach2"] = {"n_opt": n2, "loss": float(law.loss(n2, c / (k * n2)))}
    achieved = out["achieved"]["best_run"]["loss"]
    out["loss_error_pct"] = _pct(pred3["loss"], achieved)
    if par is not None:
        out["loss_error_vs_parabola_pct"] = _pct(pred3["loss"], par.loss_min)
        out["n_opt_ratio"] = pred3["n_opt"] / par.n_opt
    run_err = 100 * np.abs(law.loss(held.params, held.tokens) - held.loss) / held.loss
    out["run_loss_mape_pct"] = float(run_err.mean())
    out["train_fits"] = {key: {x: fits[key][x] for x in ("a", "b", "n_coef", "d_coef")}
                         for key in ("approach1", "approach2", "approach3") if "a" in fits[key]}
    return out
