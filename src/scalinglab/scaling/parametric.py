"""Parametric loss laws L(N, D) and their robust fits (Chinchilla Approach 3 and Kaplan et al.).

Approach 3 (Hoffmann et al. 2022, Appendix D.2, as replicated by Besiroglu et al. 2024):

    L(N, D) = E + A / N^alpha + B / D^beta,  with A = e^a, B = e^b, E = e^e,

fitted by minimising the SUM over runs of Huber_delta(LSE(a - alpha log N, b - beta log D, e)
- log L), delta = 1e-3, with L-BFGS from every point of a 4500-point grid, keeping the best.

Kaplan et al. (2020), eq. 1.5: L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D,
fitted the same robust way (Huber on log L) from a small grid.

Speed: instead of 4500 sequential scipy runs (about a minute), every start runs in one batch
(``optim.batched_lbfgs``) with successive halving -- a few iterations for all starts, the best
quarter continue, and so on -- and the best few distinct candidates are finished by scipy's
L-BFGS-B with analytic gradients, exactly as the full procedure would finish them.
``fit_approach3(..., exhaustive=True)`` runs the full procedure (scipy from every start) so the
two can be compared (benchmarks/fit_speed.py does).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy.optimize import minimize

from scalinglab.scaling.optim import batched_lbfgs

HUBER_DELTA = 1e-3
# successive halving for the batched screen: (iterations, problems kept afterwards)
SCREEN_SCHEDULE = ((12, 1200), (20, 300), (40, 60), (60, 12))
_CLIP = 700.0  # exp() arguments are clipped so that a wild start cannot overflow


def chinchilla_grid() -> np.ndarray:
    """The 4500 starting points of Hoffmann et al.: (4500, 5) as [a, b, e, alpha, beta]."""
    ab = np.arange(0.0, 26.0, 5.0)
    e = np.arange(-1.0, 1.01, 0.5)
    exps = np.arange(0.0, 2.01, 0.5)
    grid = itertools.product(ab, ab, e, exps, exps)
    return np.array(list(grid), dtype=np.float64)


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


def chinchilla_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray,
                         log_l: np.ndarray, weights: np.ndarray | None = None,
                         rows: np.ndarray | None = None,
                         delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Approach 3 objective and analytic gradient for S parameter vectors at once.

    theta: (S, 5) as [a, b, e, alpha, beta]; data (n,); weights None, (n,) or (S_all, n)
    selected by ``rows``. Returns f (S,) and grad (S, 5).
    """
    a, b, e, alpha, beta = (theta[:, i, None] for i in range(5))
    e1 = np.exp(np.clip(a - alpha * log_n, -_CLIP, _CLIP))  # A / N^alpha   (S, n)
    e2 = np.exp(np.clip(b - beta * log_d, -_CLIP, _CLIP))  # B / D^beta    (S, n)
    e3 = np.exp(np.clip(e, -_CLIP, _CLIP))  # E              (S, 1)
    s = e1 + e2 + e3  # predicted loss
    r = np.log(s) - log_l
    w = _row_weights(weights, rows) if rows is not None else weights
    f, psi = huber_sum(r, w, delta)
    q = psi / s  # d f / d s                                              (S, n)
    t1, t2 = q * e1, q * e2
    grad = np.stack([t1.sum(1), t2.sum(1), e3[:, 0] * q.sum(1), -(t1 @ log_n), -(t2 @ log_d)], 1)
    return f, grad


def kaplan_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray,
                     log_l: np.ndarray, weights: np.ndarray | None = None,
                     rows: np.ndarray | None = None,
                     delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan L(N, D) objective: theta (S, 4) as [log N_c, log D_c, alpha_N, alpha_D]."""
    lnc, ldc, an, ad = (theta[:, i, None] for i in range(4))
    ad = np.where(np.abs(ad) < 1e-8, 1e-8, ad)
    p = an / ad
    u1 = np.clip(p * (lnc - log_n), -_CLIP, _CLIP)  # log (N_c/N)^(alpha_N/alpha_D)   (S, n)
    u2 = np.clip(ldc - log_d, -_CLIP, _CLIP)  # log D_c/D
    m = np.maximum(u1, u2)
    x1, x2 = np.exp(u1 - m), np.exp(u2 - m)
    lse = m + np.log(x1 + x2)
    w1, w2 = x1 / (x1 + x2), x2 / (x1 + x2)
    r = ad * lse - log_l
    w = _row_weights(weights, rows) if rows is not None else weights
    f, psi = huber_sum(r, w, delta)
    grad = np.stack([(psi * w1).sum(1) * an[:, 0], (psi * w2).sum(1) * ad[:, 0],
                     (psi * w1 * (lnc - log_n)).sum(1),
                     (psi * (lse - w1 * p * (lnc - log_n))).sum(1)], 1)
    return f, grad


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


@dataclasses.dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta, and the compute-optimal allocation it implies."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    @classmethod
    def from_theta(cls, theta: np.ndarray) -> ChinchillaLaw:
        a, b, e, alpha, beta = (float(v) for v in theta)
        return cls(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)),
                   alpha=alpha, beta=beta)

    def loss(self, n, d):
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    @property
    def has_optimum(self) -> bool:
        """Whether loss at fixed compute has a minimum over N: both terms must fall. A bootstrap
        refit can land on alpha or beta = 0 (a grid start), where it does not."""
        return self.alpha > 0 and self.beta > 0 and self.A > 0 and self.B > 0

    @property
    def a(self) -> float:
        """Exponent of N_opt ~ C^a (NaN without an optimum)."""
        return self.beta / (self.alpha + self.beta) if self.has_optimum else float("nan")

    @property
    def b(self) -> float:
        """Exponent of D_opt ~ C^b (NaN without an optimum)."""
        return self.alpha / (self.alpha + self.beta) if self.has_optimum else float("nan")

    def optimal(self, flops, k: float = 6.0):
        """(N_opt, D_opt) for budget C with C = k N D: N = G (C/k)^a, D = (C/k)^b / G.
        NaN when the law has no optimum (see ``has_optimum``)."""
        c = np.asarray(flops, dtype=np.float64) / k
        if not self.has_optimum:
            return np.full_like(c, np.nan), np.full_like(c, np.nan)
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        return g * c ** self.a, c ** self.b / g

    def as_dict(self) -> dict:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}


@dataclasses.dataclass(frozen=True)
class KaplanLaw:
    """L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D (Kaplan et al. eq. 1.5)."""

    N_c: float
    D_c: float
    alpha_N: float
    alpha_D: float

    @classmethod
    def from_theta(cls, theta: np.ndarray) -> KaplanLaw:
        lnc, ldc, an, ad = (float(v) for v in theta)
        return cls(N_c=float(np.exp(lnc)), D_c=float(np.exp(ldc)), alpha_N=an, alpha_D=ad)

    def loss(self, n, d):
        p = self.alpha_N / self.alpha_D
        return ((self.N_c / np.asarray(n)) ** p + self.D_c / np.asarray(d)) ** self.alpha_D

    @property
    def has_optimum(self) -> bool:
        return self.alpha_N > 0 and self.alpha_D > 0

    @property
    def a(self) -> float:
        return self.alpha_D / (self.alpha_N + self.alpha_D) if self.has_optimum else float("nan")

    @property
    def b(self) -> float:
        return self.alpha_N / (self.alpha_N + self.alpha_D) if self.has_optimum else float("nan")

    def optimal(self, flops, k: float = 6.0):
        """Minimise L(N, C/(kN)) over N: N^(p+1) = p N_c^p C / (k D_c), p = alpha_N/alpha_D
        (NaN when an exponent is not positive)."""
        c = np.asarray(flops, dtype=np.float64)
        if not self.has_optimum:
            return np.full_like(c, np.nan), np.full_like(c, np.nan)
        p = self.alpha_N / self.alpha_D
        n = (p * self.N_c ** p * c / (k * self.D_c)) ** (1.0 / (p + 1.0))
        return n, c / (k * n)

    def as_dict(self) -> dict:
        return {"N_c": self.N_c, "D_c": self.D_c, "alpha_N": self.alpha_N,
                "alpha_D": self.alpha_D}


CHINCHILLA_PAPER = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def _log_data(n, d, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d, loss = (np.asarray(v, dtype=np.float64) for v in (n, d, loss))
    return np.log(n), np.log(d), np.log(loss)


def fit_approach3(n, d, loss, weights=None, exhaustive: bool = False
                  ) -> tuple[ChinchillaLaw, np.ndarray]:
    """Approach 3 fit from the 4500-point grid. Returns the law and the distinct minima found
    (k, 5) as [a, b, e, alpha, beta], best first (bootstrap refits start from them)."""
    data = _log_data(n, d, loss)
    x, _ = multistart(chinchilla_objective, chinchilla_grid(), data, weights,
                      exhaustive=exhaustive)
    return ChinchillaLaw.from_theta(x[0]), x


def kaplan_grid() -> np.ndarray:
    """Starting points for the Kaplan form: (144, 4) as [log N_c, log D_c, alpha_N, alpha_D]."""
    lc = np.log([1e8, 1e11, 1e14])
    exps = np.array([0.03, 0.08, 0.2, 0.5])
    return np.array(list(itertools.product(lc, lc, exps, exps)), dtype=np.float64)


def fit_kaplan(n, d, loss, weights=None) -> tuple[KaplanLaw, np.ndarray]:
    """Kaplan et al.'s L(N, D) fitted with Huber on log L from ``kaplan_grid``."""
    data = _log_data(n, d, loss)
    x, _ = multistart(kaplan_objective, kaplan_grid(), data, weights,
                      schedule=((30, 40), (60, 8)))
    return KaplanLaw.from_theta(x[0]), x


def refit(objective, starts: np.ndarray, n, d, loss, weights: np.ndarray) -> np.ndarray:
    """Bootstrap refits: one problem per weight row (B, n), each from every start (k, P).

    All B x k problems run as one batch, then each replicate keeps its best. Returns (B, P).
    """
    data = _log_data(n, d, loss)
    n_rep, k = weights.shape[0], starts.shape[0]
    x0 = np.repeat(starts[None], n_rep, axis=0).reshape(n_rep * k, -1)  # (B k, P)
    w = np.repeat(weights, k, axis=0)  # (B k, n)

    def fun(x, rows):
        return objective(x, *data, weights=w, rows=rows)

    x, f = batched_lbfgs(fun, x0, iters=150)
    f = np.where(np.isfinite(f), f, np.inf).reshape(n_rep, k)
    best = np.argmin(f, axis=1)
    return x.reshape(n_rep, k, -1)[np.arange(n_rep), best]
