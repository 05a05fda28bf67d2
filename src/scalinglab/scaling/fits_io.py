"""fits.json on disk, and ``fit_study``: the one call that the CLI and the demo use."""

from __future__ import annotations

from pathlib import Path

from scalinglab.io import atomic_write_json, strict_json
from scalinglab.scaling.backtest import PREFERRED, backtest, recommend
from scalinglab.scaling.bootstrap import fit_all
from scalinglab.scaling.fitdata import FitData, load_study
from scalinglab.scaling.holdout import holdout_largest

SELF_BACKTEST_FACTORS = (2, 4, 8, 16, 32, 100)
SELF_BACKTEST_BOOT = 100


def write_fits(path: str | Path, fits: dict) -> Path:
    """Write ``fits`` atomically (fsynced, see scalinglab.io) as strict JSON."""
    return atomic_write_json(path, strict_json(fits))


def self_backtest(data: FitData, seed: int = 0, n_boot: int = SELF_BACKTEST_BOOT) -> dict:
    """The backtest inside the study's own runs and the method it recommends (``recommended``
    in fits.json; the default law, with the reason, when no factor leaves enough runs)."""
    scores = backtest(data, factors=SELF_BACKTEST_FACTORS, n_boot=n_boot, seed=seed)
    rec = recommend(scores)
    if rec is None:
        return {"method": PREFERRED, "supported_factor": None,
                "reason": "no backtest possible (too few runs below the largest budgets); "
                          "the default law"}
    return rec


def fit_data(data: FitData, n_boot: int = 1000, seed: int = 0,
             holdout: bool = False) -> dict:
    """Every fit of ``data``, the method its own backtest recommends (and the hold-out check
    when asked) as the fits.json dict."""
    fits = fit_all(data, n_boot=n_boot, seed=seed)
    rec = self_backtest(data, seed, min(n_boot, SELF_BACKTEST_BOOT))
    if "error" in fits.get(rec["method"], {}):
        rec = {"method": "approach3", "supported_factor": None,
               "reason": f"{rec['method']} cannot be fitted on these runs "
                         f"({fits[rec['method']]['error']}); Approach 3 instead"}
    fits["recommended"] = rec
    if holdout:
        fits["holdout"] = holdout_largest(data, n_boot=n_boot, seed=seed)
    return strict_json(fits)


def fit_study(study: str | Path, n_boot: int = 1000, seed: int = 0,
              holdout: bool = False) -> dict:
    """Fit a study directory and write STUDY/fits.json; returns the dictionary."""
    fits = {"source": str(study)} | fit_data(load_study(study), n_boot=n_boot, seed=seed,
                                              holdout=holdout)
    write_fits(Path(study) / "fits.json", fits)
    return fits
