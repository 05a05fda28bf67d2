"""fits.json on disk, and ``fit_study``: the one call that the CLI and the demo use."""

from __future__ import annotations

from pathlib import Path

from scalinglab.io import atomic_write_json, strict_json
from scalinglab.scaling.backtest import fit_and_recommend
from scalinglab.scaling.fitdata import FitData, load_study
from scalinglab.scaling.holdout import holdout_largest


def write_fits(path: str | Path, fits: dict) -> Path:
    """Write ``fits`` atomically (fsynced, see scalinglab.io) as strict JSON."""
    return atomic_write_json(path, strict_json(fits))


def fit_data(data: FitData, n_boot: int = 1000, seed: int = 0,
             holdout: bool = False) -> dict:
    """Every fit of ``data``, the method its own backtest recommends (and the hold-out check
    when asked) as the fits.json dict."""
    fits = fit_and_recommend(data, n_boot=n_boot, seed=seed)
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
