"""Scaling-law fits as pure functions: power laws, Approach 1 (envelope), Approach 2 (IsoFLOP).

The laws themselves (and Approach 3, Kaplan's L(N, D) and the other parametric forms) live in
``scalinglab.laws``; ``fit_all`` in ``bootstrap.py`` fits every method with uncertainty into the
``fits.json`` dictionary.

Conventions: C is training compute in the study's FLOP convention, N the parameters that
convention counts, D tokens. Parabolas are in x = log10(N) (what the report plots).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.laws.frontier import PowerLaw, fit_power_law


@dataclasses.dataclass(frozen=True)
class Curve:
    """One run's training curve (or just its final point): arrays of equal length T."""

    params: float
    flops: np.ndarray  # (T,) cumulative training compute
    tokens: np.ndarray  # (T,)
    loss: np.ndarray  # (T,)


@dataclasses.dataclass(frozen=True)
class Allocation:
    """N_opt = n_law(C), D_opt = d_law(C), plus the points the laws were fitted to."""

    n_law: PowerLaw
    d_law: PowerLaw
    flops: np.ndarray  # (K,) budgets of the fitted points
    n_opt: np.ndarray  # (K,)
    d_opt: np.ndarray  # (K,)


# ---------------------------------------------------------------------------- Approach 1


def _interp_curve(curve: Curve, log_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loss and tokens of one curve at log C grid points inside its range, NaN outside."""
    ok = (curve.flops > 0) & np.isfinite(curve.loss)
    lf = np.log(curve.flops[ok])
    order = np.argsort(lf)
    lf, loss, tok = lf[order], curve.loss[ok][order], curve.tokens[ok][order]
    if lf.size < 2:
        return np.full(log_c.shape, np.nan), np.full(log_c.shape, np.nan)
    inside = (log_c >= lf[0]) & (log_c <= lf[-1])
    l_at = np.where(inside, np.exp(np.interp(log_c, lf, np.log(loss))), np.nan)
    t_at = np.where(inside, np.exp(np.interp(log_c, lf, np.log(tok))), np.nan)
    return l_at, t_at


def envelope(curves: list[Curve], n_grid: int = 200
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Minimal loss per FLOP over all curves (Hoffmann et al. Approach 1).

    At each of ``n_grid`` log-spaced budgets C, each curve covering C is interpolated (log-log)
    and the lowest loss wins; its run's N and its tokens at C are the optimum there. Budgets
    won by the smallest or largest model of the study are dropped: there the optimum may lie
    beyond the sizes trained. Curves of a single point (final losses only) form a Pareto
    frontier instead: runs that no run with less or equal compute beats.
    Returns (C, N_opt, D_opt, L_min), each (K,).
    """
    sizes = np.array([c.params for c in curves])
    if all(c.flops.size == 1 for c in curves):
        return _pareto(curves)
    lo = min(np.log(c.flops[c.flops > 0]).min() for c in curves if np.any(c.flops > 0))
    hi = max(np.log(c.flops[c.flops > 0]).max() for c in curves if np.any(c.flops > 0))
    log_c = np.linspace(lo, hi, n_grid)
    interp = [_interp_curve(c, log_c) for c in curves]
    loss = np.stack([i[0] for i in interp])  # (R, G)
    tok = np.stack([i[1] for i in interp])  # (R, G)
    covered = np.isfinite(loss).sum(axis=0) >= 2
    best = np.argmin(np.where(np.isfinite(loss), loss, np.inf), axis=0)  # (G,)
    n_best = sizes[best]
    keep = covered & (n_best > sizes.min()) & (n_best < sizes.max())
    g = np.nonzero(keep)[0]
    return np.exp(log_c[g]), n_best[g], tok[best[g], g], loss[best[g], g]


def _pareto(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Final points no cheaper-or-equal run beats, minus those of the extreme model sizes."""
    c = np.array([cv.flops[-1] for cv in curves])
    n = np.array([cv.params for cv in curves])
    d = np.array([cv.tokens[-1] for cv in curves])
    loss = np.array([cv.loss[-1] for cv in curves])
    order = np.argsort(c)
    front, best = [], np.inf
    for i in order:
        if loss[i] < best:
            front.append(i)
            best = loss[i]
    f = np.array(front, dtype=int)
    f = f[(n[f] > n.min()) & (n[f] < n.max())]
    return c[f], n[f], d[f], loss[f]


def fit_approach1(curves: list[Curve], n_grid: int = 200) -> Allocation:
    """Approach 1: power laws N_opt(C), D_opt(C) through the envelope of the training curves."""
    c, n, d, _ = envelope(curves, n_grid)
    if np.unique(n).size < 2:
        raise ScalinglabError(
            "approach 1: the loss envelope is won by fewer than 2 interior model sizes; "
            "train more sizes or longer runs")
    return Allocation(fit_power_law(c, n), fit_power_law(c, d), c, n, d)


# ---------------------------------------------------------------------------- Approach 2


@dataclasses.dataclass(frozen=True)
class IsoflopMinimum:
    """One IsoFLOP profile: the parabola loss = c2 x^2 + c1 x + c0 in x = log10 N."""

    budget: float
    coef: tuple[float, float, float]
    n_opt: float
    d_opt: float
    loss_min: float
    interior: bool  # the minimum lies inside the trained sizes


def fit_isoflop(budget: float, params, tokens, loss) -> IsoflopMinimum | None:
    """Parabola in log10 N through one budget's runs; None if it has no minimum (c2 <= 0) or
    fewer than 3 distinct sizes. D_opt comes from the line log D vs log N of the same runs
    (so it honours the study's FLOP convention rather than assuming C = 6ND)."""
    x = np.log10(np.asarray(params, dtype=np.float64))
    loss = np.asarray(loss, dtype=np.float64)
    if np.unique(x).size < 3:
        return None
    c2, c1, c0 = np.polyfit(x, loss, 2)
    if not c2 > 0:
        return None
    x_min = -c1 / (2 * c2)
    slope, icept = np.polyfit(x, np.log10(np.asarray(tokens, dtype=np.float64)), 1)
    return IsoflopMinimum(
        budget=float(budget), coef=(float(c2), float(c1), float(c0)),
        n_opt=float(10**x_min), d_opt=float(10 ** (icept + slope * x_min)),
        loss_min=float(c0 - c1**2 / (4 * c2)), interior=bool(x.min() <= x_min <= x.max()))


def isoflop_minima(budgets, params, tokens, loss) -> list[IsoflopMinimum | None]:
    """``fit_isoflop`` for every distinct finite budget, in increasing order (None where a
    budget has no minimum). The sweep's bracketing reads ``interior`` from these."""
    budgets, params, tokens, loss = (np.asarray(v, dtype=np.float64)
                                     for v in (budgets, params, tokens, loss))
    out = []
    for c in np.unique(budgets[np.isfinite(budgets)]):
        sel = budgets == c
        out.append(fit_isoflop(c, params[sel], tokens[sel], loss[sel]))
    return out


def fit_approach2(budgets, params, tokens, loss) -> tuple[Allocation, list[IsoflopMinimum]]:
    """Approach 2: IsoFLOP parabolas per budget, then power laws through their minima.

    ``budgets`` (n,) labels each run with its IsoFLOP budget C; runs with a NaN budget are
    ignored. Needs at least 2 budgets with a minimum.
    """
    minima = [m for m in isoflop_minima(budgets, params, tokens, loss) if m is not None]
    if len(minima) < 2:
        raise ScalinglabError(
            f"approach 2 needs >= 2 IsoFLOP budgets with a parabola minimum (>= 3 sizes each),"
            f" found {len(minima)}")
    c = np.array([m.budget for m in minima])
    n = np.array([m.n_opt for m in minima])
    d = np.array([m.d_opt for m in minima])
    return Allocation(fit_power_law(c, n), fit_power_law(c, d), c, n, d), minima


def group_budgets(flops, tol_dex: float = 0.1, max_span_dex: float = 0.3) -> np.ndarray:
    """Label runs by IsoFLOP budget when none is given: sorted log10 C split at gaps > tol_dex.

    Each group's label is the geometric mean of its runs' compute. A group spanning more than
    ``max_span_dex`` is not an IsoFLOP profile (compute varies continuously): its runs get NaN.
    Returns (n,) budgets.
    """
    flops = np.asarray(flops, dtype=np.float64)
    lc = np.log10(flops)
    order = np.argsort(lc)
    labels = np.empty_like(lc)
    start = 0
    for i in range(1, lc.size + 1):
        if i == lc.size or lc[order[i]] - lc[order[i - 1]] > tol_dex:
            grp = order[start:i]
            span = lc[grp].max() - lc[grp].min()
            labels[grp] = 10 ** lc[grp].mean() if span <= max_span_dex else np.nan
            start = i
    return labels
