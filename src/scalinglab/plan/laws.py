"""Compute-optimal scaling laws for the planner: the Chinchilla paper's, or a study's fits.json.

Approaches 1 and 2 are power laws N_opt = n_coef C^a, D_opt = d_coef C^b. Approach 3 is the
parametric loss L(N, D) = E + A / N^alpha + B / D^beta, whose compute-optimal frontier under
C = 6 N D is N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = G^-1 (C/6)^(alpha/(alpha+beta)) with
G = (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al. 2022, eq. 4).

The paper's values (used when no fits.json is given):

- Approach 1: a = b = 0.50; n_coef from the paper's Table 3 (its Approach 1 projections, e.g.
  67B parameters for 5.76e23 FLOPs) by a least-squares fit in log space at a = 0.50, and
  d_coef = 1 / (6 n_coef) so that C = 6 N D (Table 3's tokens agree to ~1%).
- Approach 2: a = 0.49, b = 0.51, through the paper's 63B for Gopher's budget (5.76e23).
- Approach 3: E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28.

fits.json (written by the scaling study) is read defensively: every key is optional; a law is
usable when its coefficients are numbers, bootstrap rows that are not five finite numbers are
dropped and counted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from scalinglab.config import ConfigError
from scalinglab.scaling.paper import APPROACH2_N_AT_BUDGET, CHINCHILLA_TABLE3
from scalinglab.scaling.paper import CHINCHILLA_BUDGET as GOPHER_BUDGET


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """N_opt = n_coef C^a and D_opt = d_coef C^b."""

    n_coef: float
    a: float
    d_coef: float
    b: float
    a_ci: tuple[float, float] | None = None
    b_ci: tuple[float, float] | None = None

    def n_opt(self, flops: float) -> float:
        return self.n_coef * flops**self.a

    def d_opt(self, flops: float) -> float:
        return self.d_coef * flops**self.b


@dataclasses.dataclass(frozen=True)
class LossLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta, with optional bootstrap samples."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    bootstrap: tuple[tuple[float, float, float, float, float], ...] = ()

    def loss(self, n: float, d: float) -> float:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def frontier(self) -> PowerLaw:
        """The compute-optimal power law this loss implies under C = 6 N D."""
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / s)
        a, b = self.beta / s, self.alpha / s
        return PowerLaw(n_coef=g * 6**-a, a=a, d_coef=6**-b / g, b=b)

    def samples(self) -> list[LossLaw]:
        return [LossLaw(*row) for row in self.bootstrap]


@dataclasses.dataclass(frozen=True)
class Fits:
    """The laws a planner can use, and where they came from."""

    source: str
    flop_convention: str = "total_6n"
    approaches: dict[str, PowerLaw] = dataclasses.field(default_factory=dict)
    loss: LossLaw | None = None
    dropped_bootstrap_rows: int = 0

    def law(self, name: str | None = None) -> tuple[str, PowerLaw]:
        """The power law ``name`` (approach1/2/3); default the first available."""
        if name is None:
            for key in ("approach1", "approach2", "approach3"):
                if key in self.approaches:
                    return key, self.approaches[key]
            raise ConfigError(f"{self.source}: no usable compute-optimal law "
                              "(approach1/approach2/approach3)")
        if name not in self.approaches:
            raise ConfigError(f"{self.source}: law {name!r} is missing or incomplete; "
                              f"available: {', '.join(self.approaches) or 'none'}")
        return name, self.approaches[name]


def chinchilla_paper_fits() -> Fits:
    """The laws of Hoffmann et al. (2022) as the module docstring describes."""
    logs = [math.log(n) - 0.5 * math.log(c) for n, c, _ in CHINCHILLA_TABLE3]
    n1 = math.exp(sum(logs) / len(logs))
    a2 = 0.49
    n2 = APPROACH2_N_AT_BUDGET / GOPHER_BUDGET**a2
    loss = LossLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    return Fits(
        source="Chinchilla paper (Hoffmann et al. 2022)", flop_convention="total_6n",
        approaches={
            "approach1": PowerLaw(n_coef=n1, a=0.5, d_coef=1 / (6 * n1), b=0.5),
            "approach2": PowerLaw(n_coef=n2, a=a2, d_coef=1 / (6 * n2),
                                  b=1 - a2),
            "approach3": loss.frontier(),
        },
        loss=loss,
    )


def _number(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) \
        and math.isfinite(x) else None


def _interval(x) -> tuple[float, float] | None:
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(_number(v) is not None for v in x):
        return (float(x[0]), float(x[1]))
    return None


def _power_law(entry) -> PowerLaw | None:
    if not isinstance(entry, dict):
        return None
    vals = {k: _number(entry.get(k)) for k in ("n_coef", "a", "d_coef", "b")}
    if any(v is None for v in vals.values()) or vals["n_coef"] <= 0 or vals["d_coef"] <= 0:
        return None
    return PowerLaw(**vals, a_ci=_interval(entry.get("a_ci")), b_ci=_interval(entry.get("b_ci")))


def _loss_law(entry) -> tuple[LossLaw | None, int]:
    if not isinstance(entry, dict):
        return None, 0
    vals = {k: _number(entry.get(k)) for k in ("E", "A", "B", "alpha", "beta")}
    if any(v is None for v in vals.values()) or vals["alpha"] <= 0 or vals["beta"] <= 0:
        return None, 0
    rows, dropped = [], 0
    raw = entry.get("bootstrap")
    for row in raw if isinstance(raw, list) else []:
        nums = [_number(v) for v in row] if isinstance(row, list) else []
        if len(nums) == 5 and all(v is not None for v in nums) and nums[3] > 0 and nums[4] > 0:
            rows.append(tuple(nums))
        else:
            dropped += 1
    return LossLaw(**vals, bootstrap=tuple(rows)), dropped


def load_fits(path: str | Path) -> Fits:
    """Read a study's fits.json (see the module docstring); one-line errors for bad files."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read fits: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level")
    approaches = {k: law for k in ("approach1", "approach2")
                  if (law := _power_law(data.get(k))) is not None}
    loss, dropped = _loss_law(data.get("approach3"))
    if loss is not None:
        approaches["approach3"] = loss.frontier()
    convention = data.get("flop_convention")
    return Fits(source=str(path),
                flop_convention=convention if isinstance(convention, str) else "total_6n",
                approaches=approaches, loss=loss, dropped_bootstrap_rows=dropped)
