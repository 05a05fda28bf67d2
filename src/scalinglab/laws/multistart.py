"""Multi-start robust fitting shared by every parametric law.

Each law's objective takes S parameter vectors at once and returns (f (S,), grad (S, P)): the
Huber loss of log-space residuals summed over runs, with an analytic gradient. ``multistart``
screens every start in one batch (``optim.batched_lbfgs``) with successive halving -- a few
iterations for all starts, the best quarter continue, and so on -- and finishes the best few
distinct candidates with scipy's L-BFGS-B, exactly as running scipy from every start would
finish them (``exhaustive=True`` does that, for comparison). ``refit`` solves many weighted
problems (bootstrap draws) as one batch.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from scalinglab.laws.optim import batched_lbfgs

HUBER_DELTA = 1e-3
# successive halving for the batched screen: (iterations, problems kept afterwards)
SCREEN_SCHEDULE = ((12, 1200), (20, 300), (40, 60), (60, 12))


def _row_weights(weights: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """Per-problem weights: None (all 1), shared (n,), or one row per problem (S_all, n)."""
    if weights is None or weights.ndim == 1:
        return weights
    return weights[rows]


def huber_sum(r: np.ndarray, w: np.ndarray | None, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Sum over the last axis of Huber(r) and the weighted derivative psi = w * clip(r)."""
    c = np.clip(r, -delta, delta)
    h = c * (r - 0.5 * c)  # = r^2/2 inside [-delta, delta], delta (|r| - delta/2) outside
    if w is not None:
        h, c = h * w, c * w
    return h.sum(axis=-1), c


def _scipy_polish(objective, x0: np.ndarray, data: tuple, weights) -> tuple[np.ndarray, float]:
    """Finish one start with scipy's L-BFGS-B (default tolerances), analytic gradient."""
    def fun(x):
        f, g = objective(x[None], *data, weights=weights)
        return float(f[0]), g[0]

    res = minimize(fun, x0, jac=True, method="L-BFGS-B")
    return res.x, float(res.fun)


def _distinct(x: np.ndarray, f: np.ndarray, k: int, tol: float = 1e-3) -> np.ndarray:
    """Indices of the k best rows of x that are not within ``tol`` of a better kept row."""
    kept: list[int] = []
    for i in np.argsort(f):
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(x[i] - x[j])) > tol for j in kept):
            kept.append(int(i))
        if len(kept) == k:
            break
    return np.array(kept, dtype=int)


def multistart(objective, starts: np.ndarray, data: tuple, weights: np.ndarray | None = None,
               schedule=SCREEN_SCHEDULE, exhaustive: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """Best minima of ``objective`` from every start: returns (x (k, P), f (k,)), best first.

    ``weights`` is None or (n,), shared by every start. The batched screen keeps the best
    problems after each stage of ``schedule``; the distinct survivors are finished with scipy.
    ``exhaustive=True`` runs scipy from every start instead (the reference procedure).
    """
    if exhaustive:
        cand = [_scipy_polish(objective, x0, data, weights) for x0 in starts]
        x = np.array([c[0] for c in cand])
        f = np.array([c[1] for c in cand])
        idx = _distinct(x, f, 12)
        return x[idx], f[idx]

    def fun(x, rows):
        return objective(x, *data, weights=weights, rows=None)

    x = starts
    for iters, keep in schedule:
        x, f = batched_lbfgs(fun, x, iters)
        f = np.where(np.isfinite(f), f, np.inf)
        x = x[np.argsort(f)[:keep]]
    f = fun(x, None)[0]
    finished = [_scipy_polish(objective, x0, data, weights) for x0 in x[_distinct(x, f, 8)]]
    xs = np.array([c[0] for c in finished])
    fs = np.array([c[1] for c in finished])
    order = np.argsort(fs)
    return xs[order], fs[order]


def refit(objective, starts: np.ndarray, data: tuple, weights: np.ndarray) -> np.ndarray:
    """Bootstrap refits: one problem per weight row (B, n), each from every start (k, P).

    All B x k problems run as one batch, then each replicate keeps its best. Returns (B, P).
    """
    n_rep, k = weights.shape[0], starts.shape[0]
    x0 = np.repeat(starts[None], n_rep, axis=0).reshape(n_rep * k, -1)  # (B k, P)
    w = np.repeat(weights, k, axis=0)  # (B k, n)

    def fun(x, rows):
        return objective(x, *data, weights=w, rows=rows)

    x, f = batched_lbfgs(fun, x0, iters=150)
    f = np.where(np.isfinite(f), f, np.inf).reshape(n_rep, k)
    best = np.argmin(f, axis=1)
    return x.reshape(n_rep, k, -1)[np.arange(n_rep), best]
