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
from scalinglab.model.accounting import law_param_count
from scalinglab.scaling.study import read_json, read_study_csv, write_study_csv
from scalinglab.train.metrics import read_metrics

# Reference laws (Hoffmann et al. 2022; Kaplan et al. 2020), in the papers' units: C = 6 N D.
CHINCHILLA_A3 = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
PF_DAY = 8.64e19


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
        return [r for r in self.rows if r.get("status") == "complete"
                and r.get("final_val_loss") is not None and (kind is None or r["kind"] == kind)]

    def flops(self, row: dict[str, Any]) -> float:
        return float(row.get(f"flops_{self.convention}") or 0.0)

    def budgets(self) -> list[float]:
        return sorted({float(r["budget"]) for r in self.complete("isoflop") if r.get("budget")})


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
                     fits=read_json(root / "fits.json") or {}, evals=evals,
                     comparison=read_json(root / "comparison.json") or {})


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
    if coef is None or exp is None:
        return None
    return float(coef), float(exp)


def approach3_optimum(p: dict[str, float], c: np.ndarray,
                      k: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """N_opt, D_opt of L = E + A/N^alpha + B/D^beta under C = k N D (Hoffmann et al. eq. 4)."""
    alpha, beta = p["alpha"], p["beta"]
    g = (alpha * p["A"] / (beta * p["B"])) ** (1.0 / (alpha + beta))
    n = g * (c / k) ** (beta / (alpha + beta))
    return n, c / (k * n)


def flops_per_param_token(fits: dict[str, Any]) -> float:
    """k in C = k N D that the fit stage used for this study (6 unless it says otherwise)."""
    k = fits.get("flops_per_param_token")
    return float(k) if isinstance(k, (int, float)) and k > 0 else 6.0


def approach3_loss(p: dict[str, float], n: np.ndarray, d: np.ndarray) -> np.ndarray:
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def approach3_params(fits: dict[str, Any]) -> dict[str, float] | None:
    a3 = fits.get("approach3") or {}
    if all(isinstance(a3.get(k), (int, float)) for k in CHINCHILLA_A3):
        return {k: float(a3[k]) for k in CHINCHILLA_A3}
    return None


def approach3_band(fits: dict[str, Any], c: np.ndarray,
                   q: tuple[float, float] = (5, 95)) -> tuple[np.ndarray, ...] | None:
    """Percentile band of N_opt(C) and D_opt(C) over Approach 3's bootstrap refits.

    Returns (n_lo, n_hi, d_lo, d_hi) or None without bootstrap samples.
    """
    samples = get(fits, "approach3", "bootstrap") or []
    k = flops_per_param_token(fits)
    ns, ds = [], []
    for s in samples:
        if len(s) < 5 or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0
                                 for v in s[1:5]):
            continue
        n, d = approach3_optimum(dict(zip(("E", "A", "B", "alpha", "beta"), s, strict=False)),
                                 c, k)
        ns.append(n)
        ds.append(d)
    if len(ns) < 10:
        return None
    ns_arr, ds_arr = np.array(ns), np.array(ds)
    return (*np.percentile(ns_arr, q, axis=0), *np.percentile(ds_arr, q, axis=0))


def reference_laws(c: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """N_opt(C), D_opt(C) of the published laws, for reference lines."""
    chin_n = np.sqrt(c / 120.0)  # a = 0.50 with about 20 tokens per parameter (Approach 1/2)
    a3_n, a3_d = approach3_optimum(CHINCHILLA_A3, c)
    kap_n = 1.3e9 * (c / PF_DAY) ** 0.73  # Kaplan et al. eq. 6.1 (C in PF-days)
    return {
        "Chinchilla Approach 1/2 (a=0.50)": (chin_n, c / (6 * chin_n)),
        "Chinchilla Approach 3 (a=0.46)": (a3_n, a3_d),
        "Kaplan et al. (a=0.73)": (kap_n, c / (6 * kap_n)),
    }
