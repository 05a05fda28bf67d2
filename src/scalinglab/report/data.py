"""Everything the report reads from a study directory, loaded defensively.

The report must render for a half-finished study: missing ``fits.json``, failed runs, runs
without metrics or evaluation results all degrade to a note in the page, never an exception.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import Fits, MethodFit, parse_fits, read_fits_json
from scalinglab.laws.paper import paper_laws
from scalinglab.model.accounting import law_param_count
from scalinglab.scaling.study import read_json, read_study_csv, write_study_csv
from scalinglab.train.metrics import read_metrics


@dataclasses.dataclass
class StudyData:
    """A study as the report sees it."""

    root: Path
    rows: list[dict[str, Any]]
    """study.csv rows (numbers parsed)."""
    curves: dict[str, list[dict[str, Any]]]
    """metrics.jsonl rows per complete run id."""
    fits: dict[str, Any]
    """fits.json, or {} when the fit stage has not run."""
    evals: dict[str, dict[str, Any]]
    """results.json of the evaluation stage per run id (when present)."""
    comparison: dict[str, Any]
    """comparison.json written by the demo (compute-optimal vs 4x larger), or {}."""
    forecast: dict[str, Any] = dataclasses.field(default_factory=dict)
    """forecast.json written by the demo (the largest budget, predicted before training)."""

    @property
    def convention(self) -> str:
        for r in self.rows:
            if r.get("flop_convention"):
                return str(r["flop_convention"])
        return str(self.fits.get("flop_convention", "chinchilla"))

    @property
    def count(self) -> str:
        """The parameter count the laws use: non-embedding under kaplan, total otherwise."""
        return f"params_{law_param_count(self.convention)}"

    def complete(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Complete runs with a finite final validation loss (the ones figures can draw; the
        fit stage leaves non-finite ones out too)."""
        return [r for r in self.rows if r.get("status") == "complete"
                and finite(r.get("final_val_loss")) and (kind is None or r["kind"] == kind)]

    def not_drawn(self) -> list[dict[str, Any]]:
        """Complete runs that ``complete`` leaves out: no finite final validation loss."""
        return [r for r in self.rows if r.get("status") == "complete"
                and not finite(r.get("final_val_loss"))]

    def flops(self, row: dict[str, Any]) -> float:
        return float(row.get(f"flops_{self.convention}") or 0.0)

    def budgets(self) -> list[float]:
        return sorted({float(r["budget"]) for r in self.complete("isoflop") if r.get("budget")})


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_study(study: str | Path) -> StudyData:
    """Read study.csv (rewritten from the run directories when a plan exists), curves, fits,
    evaluation results and the demo's comparison."""
    root = Path(study)
    if (root / "plan.json").exists():
        write_study_csv(root)
    csv_path = root / "study.csv"
    if not csv_path.exists():
        raise ScalinglabError(f"{root}: no study.csv (run `scalinglab sweep run` first)")
    rows = read_study_csv(csv_path)
    curves, evals = {}, {}
    for r in rows:
        run = root / "runs" / str(r["run_id"])
        if r.get("status") == "complete":
            curves[r["run_id"]] = read_metrics(run)
        result = read_json(run / "results.json")
        if result:
            evals[r["run_id"]] = result
    return StudyData(root=root, rows=rows, curves=curves,
                     fits=_fits_json(root / "fits.json"), evals=evals,
                     comparison=read_json(root / "comparison.json") or {},
                     forecast=read_json(root / "forecast.json") or {})


def _fits_json(path: Path) -> dict[str, Any]:
    """fits.json, {} before the fit stage; a damaged one is an error, not "not fitted yet"."""
    return read_fits_json(path) if path.exists() else {}


# ---------------------------------------------------------------------- laws from fits.json


def get(d: Any, *keys: str, default: Any = None) -> Any:
    """Nested lookup that tolerates missing keys and non-dict values."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def power_law(fit: dict[str, Any], which: str) -> tuple[float, float] | None:
    """(coefficient, exponent) of N_opt (which='n') or D_opt (which='d') from one approach."""
    coef, exp = fit.get(f"{which}_coef"), fit.get("a" if which == "n" else "b")
    if not isinstance(coef, (int, float)) or not isinstance(exp, (int, float)):
        return None
    return float(coef), float(exp)


def study_laws(s: StudyData) -> Fits:
    """The study's fits.json through the one reader (an empty ``Fits`` when it is unusable)."""
    try:
        return parse_fits(s.fits, str(s.root / "fits.json"))
    except ScalinglabError:
        return Fits(source=str(s.root / "fits.json"))


def approach3_fit(s: StudyData) -> MethodFit | None:
    return study_laws(s).methods.get("approach3")


def approach3_band(s: StudyData, c: np.ndarray,
                   level: float = 0.95) -> tuple[np.ndarray, ...] | None:
    """Central ``level`` percentile band of N_opt(C) and D_opt(C) over Approach 3's bootstrap
    refits (the report passes fits.json's ``ci_level``, the level of every table's interval).

    Returns (n_lo, n_hi, d_lo, d_hi) or None without bootstrap samples.
    """
    laws = study_laws(s)
    fit = laws.methods.get("approach3")
    boot = [b for b in (fit.bootstrap if fit else ()) if b.has_optimum]
    if len(boot) < 10:
        return None
    ns, ds = zip(*(b.optimum(c, laws.k) for b in boot), strict=True)
    q = (50 * (1 - level), 100 - 50 * (1 - level))
    return (*np.percentile(np.array(ns), q, axis=0), *np.percentile(np.array(ds), q, axis=0))


# The published laws drawn for reference: name in ``laws.paper`` -> legend label saying which
# approach and which constants.
REFERENCE_LABELS = {
    "Chinchilla approach 1 (Table 3)": "Chinchilla paper, Approach 1 (Table 3 fit): N ~ C^0.50",
    "Chinchilla approach 3": "Chinchilla paper, Approach 3 (E=1.69, A=406.4, B=410.7, "
                             "alpha=0.34, beta=0.28): N ~ C^0.46",
    "Kaplan et al. 2020": "Kaplan et al. 2020: N ~ C^0.73"}


def reference_laws(c: np.ndarray) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Paper name -> (label, N_opt(C), D_opt(C)) of the published laws (``laws.paper``)."""
    return {name: (REFERENCE_LABELS[name], *law.optimum(c, 6.0))
            for name, (law, _) in paper_laws().items() if name in REFERENCE_LABELS}
