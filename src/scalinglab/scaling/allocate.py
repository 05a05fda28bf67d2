"""Compute-optimal allocation: N_opt, D_opt, tokens per parameter and loss for a budget C.

Sources, side by side: the laws fitted to a study (``fits.json``) and the published ones.

Published references (Hoffmann et al. 2022; Kaplan et al. 2020):

- Chinchilla Approach 3: E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28 (a = 0.452 from these
  rounded values; the paper quotes 0.46).
- Chinchilla Approach 1: the power law through the paper's Table 3 (which the paper computed
  with Approach 1); its exponent comes out 0.498 (paper: 0.50).
- Chinchilla Approach 2: a = 0.49 through the paper's 63B parameters at Gopher's budget,
  5.76e23 FLOPs (the same anchor ``plan/laws.py`` uses).
- Kaplan et al.: N_opt = 1.3e9 (C / 1 PF-day)^0.73 (their Fig. 14), D = C / (6 N).

Predicted losses of the power-law approaches use the matching Approach 3 law (the study's fit
for fitted sources, the paper's for published ones), since Approaches 1 and 2 predict no loss.
"""

from __future__ import annotations

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.scaling.bootstrap import percentile_ci
from scalinglab.scaling.fit import PowerLaw, fit_power_law
from scalinglab.scaling.paper import (  # noqa: F401 - re-exported for callers
    APPROACH2_N_AT_BUDGET,
    CHINCHILLA_BUDGET,
    CHINCHILLA_TABLE3,
)
from scalinglab.scaling.parametric import CHINCHILLA_PAPER, ChinchillaLaw, KaplanLaw

PF_DAY = 1e15 * 86400  # FLOPs in one petaflop/s-day
CHINCHILLA_APPROACH3 = CHINCHILLA_PAPER
PAPER_EXPONENTS = {"approach1": 0.50, "approach2": 0.49, "approach3": 0.46, "kaplan": 0.73}


def table3_law() -> PowerLaw:
    """N_opt(C) through the rows of Chinchilla's Table 3 (least squares in log-log)."""
    n, c, _ = np.array(CHINCHILLA_TABLE3).T
    return fit_power_law(c, n)


def _power_source(name: str, law: PowerLaw, k: float, loss_law) -> dict:
    return {"name": name, "kind": "power", "n_law": law, "k": k, "loss_law": loss_law}


def paper_sources() -> list[dict]:
    """The published laws as allocation sources (C = 6 N D, total parameters)."""
    t3 = table3_law()
    a2 = PAPER_EXPONENTS["approach2"]
    a2_coef = APPROACH2_N_AT_BUDGET / CHINCHILLA_BUDGET**a2
    kaplan = PowerLaw(coef=1.3e9 / PF_DAY ** PAPER_EXPONENTS["kaplan"],
                      exponent=PAPER_EXPONENTS["kaplan"])
    ref = CHINCHILLA_APPROACH3
    return [
        _power_source("Chinchilla approach 1 (Table 3)", t3, 6.0, ref),
        _power_source("Chinchilla approach 2", PowerLaw(a2_coef, a2), 6.0, ref),
        {"name": "Chinchilla approach 3", "kind": "law", "law": ref, "k": 6.0},
        _power_source("Kaplan et al. 2020", kaplan, 6.0, ref),
    ]


def fitted_sources(fits: dict) -> list[dict]:
    """Allocation sources from a ``fits.json`` dictionary (approaches that were fitted)."""
    k = float(fits.get("flops_per_param_token", 6.0))
    a3 = fits.get("approach3", {})
    law3 = ChinchillaLaw(*(a3[x] for x in ("E", "A", "B", "alpha", "beta"))) if "E" in a3 \
        else None
    out = []
    for key, label in (("approach1", "fit: approach 1"), ("approach2", "fit: approach 2")):
        f = fits.get(key, {})
        if "a" in f:
            out.append(_power_source(label, PowerLaw(f["n_coef"], f["a"]), k, law3))
    if law3 is not None:
        boot = [ChinchillaLaw(*row) for row in a3.get("bootstrap", [])]
        out.append({"name": "fit: approach 3", "kind": "law", "law": law3, "k": k,
                    "bootstrap": boot})
    kp = fits.get("kaplan", {})
    if "N_c" in kp:
        out.append({"name": "fit: Kaplan form", "kind": "law", "k": k,
                    "law": KaplanLaw(kp["N_c"], kp["D_c"], kp["alpha_N"], kp["alpha_D"])})
    return out


def _row(name: str, n: float, d: float, loss: float | None) -> dict:
    return {"source": name, "n_opt": float(n), "d_opt": float(d),
            "tokens_per_param": float(d / n), "loss": None if loss is None else float(loss)}


def allocate_one(source: dict, flops: float) -> dict:
    """N_opt, D_opt, D/N and predicted loss for budget ``flops`` from one source."""
    k = source["k"]
    if source["kind"] == "power":
        n = float(source["n_law"](flops))
        d = flops / (k * n)
        loss_law = source["loss_law"]
        return _row(source["name"], n, d, loss_law.loss(n, d) if loss_law else None)
    law = source["law"]
    n, d = law.optimal(flops, k)
    row = _row(source["name"], n, d, law.loss(n, d))
    if source.get("bootstrap"):
        opt = [b.optimal(flops, k) for b in source["bootstrap"]]
        row["n_opt_ci"] = percentile_ci([o[0] for o in opt])
        row["d_opt_ci"] = percentile_ci([o[1] for o in opt])
        row["loss_ci"] = percentile_ci([b.loss(*o) for b, o in zip(source["bootstrap"], opt,
                                                                    strict=True)])
    return row


def allocate(flops: float, fits: dict | None = None) -> list[dict]:
    """One row per source (fitted first, then published) for budget ``flops``."""
    if not flops > 0:
        raise ScalinglabError(f"budget must be a positive number of FLOPs, got {flops}")
    sources = (fitted_sources(fits) if fits else []) + paper_sources()
    return [allocate_one(s, flops) for s in sources]


def optimal_budget(source: dict, params: float) -> float:
    """The compute C for which ``params`` is compute-optimal under one source."""
    if source["kind"] == "power":
        law = source["n_law"]
        return float((params / law.coef) ** (1.0 / law.exponent))
    n1, _ = source["law"].optimal(1.0, source["k"])  # N_opt = n1 C^a
    return float((params / n1) ** (1.0 / source["law"].a))


def size_table(sizes: list[float], fits: dict | None = None) -> list[dict]:
    """Chinchilla Table 3 style: for each model size, the FLOPs and tokens that make it
    compute-optimal (D = C / (k N)) and the predicted loss, for every source."""
    sources = (fitted_sources(fits) if fits else []) + paper_sources()
    rows = []
    for s in sources:
        for n in sizes:
            c = optimal_budget(s, n)
            d = c / (s["k"] * n)
            loss_law = s.get("loss_law") if s["kind"] == "power" else s["law"]
            rows.append({"source": s["name"], "params": float(n), "flops": c, "tokens": d,
                         "loss": float(loss_law.loss(n, d)) if loss_law else None})
    return rows
