"""Published laws and figures (Hoffmann et al. 2022; Kaplan et al. 2020): the one copy that
the allocation, the planner and the report quote. All in the papers' units: C = 6 N D with
N the total parameters (Kaplan: non-embedding, as the paper counts).

- Chinchilla Approach 3: E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28 (a = 0.452 from these
  rounded values; the paper quotes 0.46).
- Chinchilla Approach 1: the power law through the paper's Table 3 (which the paper computed
  with Approach 1) by least squares in log-log space; its exponent comes out 0.498 (paper:
  0.50), and D = C / (6 N) (Table 3's tokens agree to ~1%, 67B's row to 5%).
- Chinchilla Approach 2: a = 0.49 through the paper's 63B parameters at Gopher's budget,
  5.76e23 FLOPs.
- Kaplan et al.: N_opt = 1.3e9 (C / 1 PF-day)^0.73 (their eq. 6.1 / Fig. 14), D = C / (6 N).
"""

from __future__ import annotations

import math

from scalinglab.laws.frontier import Approach1Law, Approach2Law, ComputeOptimalLaw
from scalinglab.laws.parametric import ChinchillaLaw

CHINCHILLA_BUDGET = 5.76e23
"""Gopher's and Chinchilla's training compute (FLOPs)."""

APPROACH2_N_AT_BUDGET = 63e9
"""The paper's Approach 2 model size for that budget."""

CHINCHILLA_TABLE3 = (
    (400e6, 1.92e19, 8.0e9), (1e9, 1.21e20, 20.2e9), (10e9, 1.23e22, 205.1e9),
    (67e9, 5.76e23, 1.5e12), (175e9, 3.85e24, 3.7e12), (280e9, 9.90e24, 5.9e12),
    (520e9, 3.43e25, 11.0e12), (1e12, 1.27e26, 21.2e12), (10e12, 1.30e28, 216.2e12),
)
"""Table 3 (Approach 1 projections): (parameters, training FLOPs, training tokens)."""

PF_DAY = 1e15 * 86400
"""FLOPs in one petaflop/s-day."""

PAPER_EXPONENTS = {"approach1": 0.50, "approach2": 0.49, "approach3": 0.46, "kaplan": 0.73}
"""The exponents a of N_opt ~ C^a that the papers quote."""


def _frontier(law_cls, n_coef: float, a: float):
    # D = C / (6 N) = C^(1 - a) / (6 n_coef)
    return law_cls(n_coef=n_coef, a=a, d_coef=1.0 / (6.0 * n_coef), b=1.0 - a)


def table3_fit() -> tuple[float, float]:
    """(n_coef, a) of the least-squares line log N = log n_coef + a log C through Table 3."""
    xs = [math.log(c) for _, c, _ in CHINCHILLA_TABLE3]
    ys = [math.log(n) for n, _, _ in CHINCHILLA_TABLE3]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs)
    return math.exp(my - a * mx), a


CHINCHILLA_PAPER = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
"""Hoffmann et al.'s published Approach 3 law."""


def paper_laws() -> dict[str, tuple[ComputeOptimalLaw | ChinchillaLaw, ChinchillaLaw]]:
    """Published source name -> (law for N_opt, law for the loss), in display order."""
    n1, a1 = table3_fit()
    a2, ak = PAPER_EXPONENTS["approach2"], PAPER_EXPONENTS["kaplan"]
    a3 = CHINCHILLA_PAPER
    return {
        "Chinchilla approach 1 (Table 3)": (_frontier(Approach1Law, n1, a1), a3),
        "Chinchilla approach 2": (
            _frontier(Approach2Law, APPROACH2_N_AT_BUDGET / CHINCHILLA_BUDGET**a2, a2), a3),
        "Chinchilla approach 3": (a3, a3),
        "Kaplan et al. 2020": (_frontier(ComputeOptimalLaw, 1.3e9 / PF_DAY**ak, ak), a3),
    }
