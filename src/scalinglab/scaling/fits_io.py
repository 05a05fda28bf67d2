"""fits.json on disk, and ``fit_study``: the one call that the CLI and the demo use."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.scaling.bootstrap import fit_all
from scalinglab.scaling.fitdata import FitData, load_study
from scalinglab.scaling.holdout import holdout_largest


def clean_json(value):
    """numpy scalars -> Python, NaN/inf -> None, so fits.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_fits(path: str | Path, fits: dict) -> Path:
    """Write ``fits`` atomically (fsynced, see scalinglab.io) as strict JSON."""
    from scalinglab.io import atomic_write_json

    return atomic_write_json(path, clean_json(fits))


def read_fits(path: str | Path) -> dict:
    """A fits.json, with a one-line error when it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise ScalinglabError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ScalinglabError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def fit_data(data: FitData, n_boot: int = 1000, seed: int = 0,
             holdout: bool = False) -> dict:
    """Every fit of ``data`` (and the hold-out check when asked) as the fits.json dict."""
    fits = fit_all(data, n_boot=n_boot, seed=seed)
    if holdout:
        fits["holdout"] = holdout_largest(data, n_boot=n_boot, seed=seed)
    return clean_json(fits)


def fit_study(study: str | Path, n_boot: int = 1000, seed: int = 0,
              holdout: bool = False) -> dict:
    """Fit a study directory and write STUDY/fits.json; returns the dictionary."""
    fits = {"source": str(study)} | fit_data(load_study(study), n_boot=n_boot, seed=seed,
                                              holdout=holdout)
    write_fits(Path(study) / "fits.json", fits)
    return fits
