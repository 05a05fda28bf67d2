"""Laws of the compute-optimal frontier: power laws N_opt(C), D_opt(C) and the optimal loss L*(C).

- ``approach1`` / ``approach2`` (Hoffmann et al. 2022, sections 3.1-3.2): N_opt = n_coef C^a,
  D_opt = d_coef C^b, fitted (in ``scaling.fit``) through the envelope of training curves or
  the minima of IsoFLOP parabolas. They say how to spend C, not what loss it buys.
- ``isoflop`` -- the IsoFLOP-minima route: Approach 2's N_opt(C) plus a saturating power law
  through the parabolas' minimal losses, L*(C) = E + A C^-gamma, the form of the GPT-4
  report's (OpenAI 2023, section 3.1) loss prediction "from models trained with the same
  methodology but using at most 1/1000th the compute". It predicts compute-optimal losses
  only (``predicts_runs`` is False).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy.optimize import least_squares

from scalinglab.errors import ScalinglabError
from scalinglab.laws.base import Law, LawError, as_array, register


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """y = coef * x**exponent, fitted by least squares in log-log space."""

    coef: float
    exponent: float

    def __call__(self, x):
        return self.coef * np.power(as_array(x), self.exponent)


def fit_power_law(x, y) -> PowerLaw:
    """Least-squares line through (log x, log y). Needs two distinct x."""
    lx, ly = np.log(as_array(x)), np.log(as_array(y))
    if lx.size < 2 or np.ptp(lx) == 0:
        raise ScalinglabError(f"a power law needs at least 2 distinct x values, got {lx.size}")
    slope, intercept = np.polyfit(lx, ly, 1)
    with np.errstate(over="ignore"):  # a wild bootstrap draw may give an absurd intercept
        return PowerLaw(coef=float(np.exp(intercept)), exponent=float(slope))


@dataclasses.dataclass(frozen=True)
class ComputeOptimalLaw(Law):
    """N_opt = n_coef C^a and D_opt = d_coef C^b (no loss)."""

    method = "frontier"
    title = "compute-optimal power law"
    predicts_runs = False
    n_coef: float
    a: float
    d_coef: float
    b: float

    def optimum(self, c, k: float = 6.0):
        c = as_array(c)
        with np.errstate(over="ignore"):  # a wild bootstrap exponent overflows to inf, not noise
            return self.n_coef * c ** self.a, self.d_coef * c ** self.b

    def budget_for(self, n: float) -> float:
        """The compute for which ``n`` parameters are optimal."""
        return float((n / self.n_coef) ** (1.0 / self.a))


@register
@dataclasses.dataclass(frozen=True)
class Approach1Law(ComputeOptimalLaw):
    method = "approach1"
    title = "Approach 1 (training-curve envelope)"


@register
@dataclasses.dataclass(frozen=True)
class Approach2Law(ComputeOptimalLaw):
    method = "approach2"
    title = "Approach 2 (IsoFLOP profiles)"


@register
@dataclasses.dataclass(frozen=True)
class IsoflopLaw(Law):
    """L*(C) = E + A C^-gamma with N_opt = n_coef C^a (see the module docstring).

    ``k`` is the FLOPs per (parameter x token) of the study, so that ``loss(n, d)`` reads the
    compute of a run as C = k N D. C is scaled by ``c_ref`` inside the power so that A stays a
    number of order one."""

    method = "isoflop"
    title = "IsoFLOP minima + L*(C) = E + A C^-gamma"
    predicts_runs = False
    E: float
    A: float
    gamma: float
    n_coef: float
    a: float
    k: float
    c_ref: float

    def optimal_loss(self, c):
        return self.E + self.A * (as_array(c) / self.c_ref) ** -self.gamma

    def loss(self, n, d, unique=None):
        return self.optimal_loss(self.k * as_array(n) * as_array(d))

    @property
    def has_optimum(self) -> bool:
        return self.n_coef > 0 and self.a > 0

    def optimum(self, c, k: float | None = None):
        c = as_array(c)
        with np.errstate(over="ignore"):
            n = self.n_coef * c ** self.a
        return n, c / ((k or self.k) * n)


def fit_saturating(c, loss, min_points: int = 3) -> tuple[float, float, float, float]:
    """(E, A, gamma, c_ref) of L = E + A (C / c_ref)^-gamma by least squares on log L from a
    small grid of starts, with 0 <= E <= min(L) (an irreducible loss cannot exceed a reached
    one) and gamma in (0, 2]."""
    c, loss = as_array(c), as_array(loss)
    if c.size < min_points or np.unique(c).size < min_points:
        raise LawError(f"isoflop: L*(C) needs >= {min_points} IsoFLOP budgets with a minimum, "
                       f"got {np.unique(c).size}")
    c_ref = float(np.exp(np.log(c).mean()))
    x = c / c_ref
    top = float(loss.min()) * (1 - 1e-9)

    def resid(p):
        return np.log(p[0] + p[1] * x ** -p[2]) - np.log(loss)

    best = None
    for e_frac, g in itertools.product((0.0, 0.5, 0.9), (0.05, 0.2, 0.5)):
        e0 = e_frac * top
        a0 = max(float(np.exp(np.log(loss).mean())) - e0, 1e-6)
        r = least_squares(resid, [e0, a0, g], bounds=([0.0, 1e-12, 1e-4], [top, np.inf, 2.0]))
        if best is None or r.cost < best.cost:
            best = r
    e, a, gamma = (float(v) for v in best.x)
    return e, a, gamma, c_ref
