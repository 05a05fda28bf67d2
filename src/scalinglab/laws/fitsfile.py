"""fits.json: the one reader (and writer) every stage uses -- fit, allocate, predict, plan run,
the report and the demo.

Layout (written by ``scaling.fits_io``): top-level ``flop_convention``, ``flops_per_param_token``
(k in C = k N D), ``n_runs``, ``range`` (the compute, parameters and tokens the fit saw), one
entry per method (``approach1``, ``approach2``, ``approach3``, ``approach3_tied``, ``kaplan``,
``isoflop``, ``data_constrained``) holding the law's fields, ``bootstrap`` (one row of those
fields per resample), ``residual_sd`` (scatter of log L around the law) and, when the method
could not be fitted, only ``error``; and ``recommended`` (the method that extrapolated best in
the study's own backtest, with its figures).

Reading is defensive: a method whose entry is malformed is left out and its reason kept in
``Fits.errors``; bootstrap rows that are not finite numbers of the right length are dropped
and counted. A file that is not a JSON object is a one-line error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scalinglab.errors import ScalinglabError
from scalinglab.io import read_json_object
from scalinglab.laws.base import LAWS, Law, LawError, is_finite_number

LOSS_METHODS = ("approach3", "approach3_tied", "kaplan", "isoflop", "data_constrained")
FRONTIER_METHODS = ("approach1", "approach2")
DEFAULT_METHOD = "approach3"


@dataclasses.dataclass(frozen=True)
class FittedRange:
    """What the fit saw: the forecast's extrapolation is measured from here."""

    max_flops: float
    min_flops: float
    min_params: float
    max_params: float
    min_tokens: float
    max_tokens: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class MethodFit:
    """One fitted law with what its predictive interval needs."""

    method: str
    law: Law
    bootstrap: tuple[Law, ...] = ()
    residual_sd: float = 0.0
    """Standard deviation of log L - log law(N, D) over the fitted runs (robust estimate)."""
    n_runs: int = 0
    kappa: float | None = None
    """Growth of the scatter per decade of extrapolation, from a backtest inside the fitted
    runs (``scaling.bootstrap.extrapolation_kappa``); None when that was not possible."""


@dataclasses.dataclass
class Fits:
    """Everything a forecast needs from a fits.json."""

    source: str
    flop_convention: str = "total_6n"
    k: float = 6.0
    methods: dict[str, MethodFit] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    recommended: str | None = None
    recommendation: dict = dataclasses.field(default_factory=dict)
    range: FittedRange | None = None
    dropped_bootstrap_rows: int = 0
    raw: dict = dataclasses.field(default_factory=dict)

    def method(self, name: str | None = None) -> MethodFit:
        """The loss law ``name``; default the recommended one, else Approach 3."""
        name = name or self.recommended or DEFAULT_METHOD
        if name not in self.methods:
            why = self.errors.get(name, "not in the file")
            avail = ", ".join(m for m in self.methods if m in LOSS_METHODS) or "none"
            raise ScalinglabError(f"{self.source}: method {name!r} unavailable ({why}); "
                                  f"available: {avail}")
        return self.methods[name]

    def frontier(self, name: str | None = None) -> tuple[str, MethodFit]:
        """The law that sets N_opt(C) for ``name`` (approach1/2 or any loss law); default the
        recommended method, else the first of approach1, approach2, approach3."""
        if name is None:
            name = self.recommended or next(
                (m for m in (*FRONTIER_METHODS, DEFAULT_METHOD) if m in self.methods), None)
            if name is None:
                why = "; ".join(f"{k}: {v}" for k, v in self.errors.items()) or "none fitted"
                raise ScalinglabError(f"{self.source}: no usable compute-optimal law ({why})")
        if name not in self.methods:
            why = self.errors.get(name, "not in the file")
            raise ScalinglabError(f"{self.source}: law {name!r} unavailable ({why}); "
                                  f"available: {', '.join(self.methods) or 'none'}")
        return name, self.methods[name]

    def optimum(self, name: str | None, flops) -> tuple[str, float, float]:
        """(method, N_opt, D_opt) at budget ``flops`` under C = k N D of this study."""
        name, fit = self.frontier(name)
        n, d = fit.law.optimum(flops, self.k)
        return name, float(n), float(d)

    def loss_fit_for(self, name: str) -> MethodFit | None:
        """The law that predicts the loss of an allocation made by ``name``: itself when it is
        a loss law, else the recommended loss law (or Approach 3)."""
        if name in LOSS_METHODS and name in self.methods:
            return self.methods[name]
        for m in (self.recommended, DEFAULT_METHOD, *LOSS_METHODS):
            if m in self.methods and m in LOSS_METHODS:
                return self.methods[m]
        return None

    def loss_methods(self) -> list[str]:
        return [m for m in LOSS_METHODS if m in self.methods]

    def supported_factor(self) -> float | None:
        """The largest extrapolation factor the study's own backtest checked and passed."""
        f = self.recommendation.get("supported_factor")
        return float(f) if is_finite_number(f) and f > 0 else None


def _bootstrap(cls: type[Law], raw) -> tuple[tuple[Law, ...], int]:
    rows, dropped = [], 0
    width = len(cls.params())
    for row in raw if isinstance(raw, list) else []:
        if isinstance(row, list) and len(row) == width and all(is_finite_number(v) for v in row):
            rows.append(cls.from_row(row))
        else:
            dropped += 1
    return tuple(rows), dropped


def _method_fit(name: str, entry, where: str) -> tuple[MethodFit, int]:
    law = Law.from_dict(name, entry, where)
    boot, dropped = _bootstrap(type(law), entry.get("bootstrap"))
    sd, n, kappa = entry.get("residual_sd"), entry.get("n_runs"), entry.get("kappa")
    return MethodFit(name, law, boot, float(sd) if is_finite_number(sd) and sd >= 0 else 0.0,
                     int(n) if is_finite_number(n) else 0,
                     float(kappa) if is_finite_number(kappa) and kappa >= 0 else None), dropped


def _range(raw) -> FittedRange | None:
    names = [f.name for f in dataclasses.fields(FittedRange)]
    if isinstance(raw, dict) and all(is_finite_number(raw.get(k)) and raw[k] > 0 for k in names):
        return FittedRange(**{k: float(raw[k]) for k in names})
    return None


def parse_fits(data, source: str) -> Fits:
    """A fits.json dictionary as ``Fits`` (see the module docstring)."""
    if not isinstance(data, dict):
        raise ScalinglabError(f"{source}: expected a JSON object at the top level, got "
                              f"{type(data).__name__}")
    conv = data.get("flop_convention")
    k = data.get("flops_per_param_token")
    fits = Fits(source=source, flop_convention=conv if isinstance(conv, str) else "total_6n",
                k=float(k) if is_finite_number(k) and k > 0 else 6.0,
                range=_range(data.get("range")), raw=data)
    for name in FRONTIER_METHODS + LOSS_METHODS:
        entry = data.get(name)
        if entry is None:
            continue
        if isinstance(entry, dict) and "error" in entry and len(entry) == 1:
            fits.errors[name] = str(entry["error"])
            continue
        try:
            fit, dropped = _method_fit(name, entry, source)
        except LawError as e:
            fits.errors[name] = str(e).removeprefix(f"{source}: ")
            continue
        fits.methods[name] = fit
        fits.dropped_bootstrap_rows += dropped
    rec = data.get("recommended")
    if isinstance(rec, dict) and rec.get("method") in fits.methods:
        fits.recommended, fits.recommendation = rec["method"], rec
    return fits


def paper_fits() -> Fits:
    """The laws of Hoffmann et al. (2022) as a ``Fits`` (``laws.paper``): C = 6 N D."""
    from scalinglab.laws.paper import CHINCHILLA_PAPER, paper_laws

    laws = paper_laws()
    methods = {"approach1": laws["Chinchilla approach 1 (Table 3)"][0],
               "approach2": laws["Chinchilla approach 2"][0], "approach3": CHINCHILLA_PAPER}
    return Fits(source="Chinchilla paper (Hoffmann et al. 2022)", flop_convention="total_6n",
                k=6.0, methods={m: MethodFit(m, law) for m, law in methods.items()})


def load_fits(path: str | Path) -> Fits:
    """Read a fits.json; one-line errors for a missing, unreadable or malformed file."""
    return parse_fits(read_fits_json(path), str(path))


def read_fits_json(path: str | Path) -> dict:
    """The raw dictionary of a fits.json, with a one-line error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ScalinglabError(f"{path}: no such file")
    return read_json_object(path, "fits.json")


def law_entry(fit: MethodFit, k: float) -> dict:
    """The fits.json entry of one fitted law; ``a``, ``b``, ``n_coef``, ``d_coef`` describe its
    compute-optimal frontier N_opt = n_coef C^a, D_opt = d_coef C^b under C = k N D."""
    law = fit.law
    out = law.to_dict()
    if law.has_optimum and hasattr(law, "a"):
        n1, d1 = law.optimum(1.0, k)
        out |= {"a": float(law.a), "b": float(1.0 - law.a if not hasattr(law, "b") else law.b),
                "n_coef": float(n1), "d_coef": float(d1)}
    out |= {"residual_sd": fit.residual_sd, "kappa": fit.kappa, "n_runs": fit.n_runs,
            "bootstrap": [b.row() for b in fit.bootstrap]}
    return out


__all__ = ["LAWS", "Fits", "FittedRange", "MethodFit", "load_fits", "paper_fits",
           "parse_fits", "read_fits_json", "law_entry"]
