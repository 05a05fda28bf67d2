"""The study directory's plan files: ``STUDY/sweep.json`` and ``STUDY/plan.json``.

Planning is additive: ``add_runs`` keeps every planned run as it is (it may already hold
results) and appends the new ones; a plan of another version is refused rather than misread.
The layout of a study directory is described in ``scaling.sweep``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalinglab.config import ConfigError
from scalinglab.io import atomic_write_json, read_json_object, require_fields
from scalinglab.scaling.sweep import plan_runs, resolve_config
from scalinglab.scaling.sweep_config import RunSpec, SweepConfig

PLAN_VERSION = 1


def load_plan(study: str | Path) -> list[RunSpec]:
    path = Path(study) / "plan.json"
    if not path.exists():
        raise ConfigError(f"{study}: no plan.json; run `scalinglab sweep plan` first")
    data = read_json_object(path, "plan", ConfigError)
    if data.get("version") != PLAN_VERSION:
        # Another version's runs may mean other fields: refuse rather than misread them.
        raise ConfigError(f"{path}: plan version {data.get('version')!r}, this scalinglab reads "
                          f"version {PLAN_VERSION}; plan the study again in a new directory")
    require_fields(data, {"runs": list}, str(path), ConfigError)
    return [_run_spec(r, f"{path}: runs[{i}]") for i, r in enumerate(data["runs"])]


def _run_spec(raw: Any, where: str) -> RunSpec:
    """One planned run of plan.json; its ``train`` must hold the run's model."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object, got {type(raw).__name__}")
    require_fields(raw, {"run_id": str, "train": dict}, where, ConfigError)
    require_fields(raw["train"], {"model": dict}, f"{where}.train", ConfigError)
    try:
        return RunSpec.from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_sweep_config(study: str | Path) -> SweepConfig:
    path = Path(study) / "sweep.json"
    if not path.exists():
        raise ConfigError(f"{study}: no sweep.json; run `scalinglab sweep plan` first")
    return SweepConfig.from_file(path)


def add_runs(study: str | Path, cfg: SweepConfig, runs: list[RunSpec]) -> list[RunSpec]:
    """Add ``runs`` to the study's plan (already planned ids are kept as they are).

    Returns the runs that were new.
    """
    study = Path(study)
    existing = []
    if (study / "plan.json").exists():
        existing = load_plan(study)
        before = read_json_object(study / "plan.json", "plan").get("flop_convention")
        if before != cfg.flop_convention.value:
            raise ConfigError(f"{study}: planned with flop_convention={before}; a study keeps "
                              f"one convention (got {cfg.flop_convention.value})")
    known = {r.run_id for r in existing}
    # a run asked for twice (e.g. a grid's centre that is also a comparison run) is planned once
    new = list({r.run_id: r for r in runs if r.run_id not in known}.values())
    atomic_write_json(study / "sweep.json", cfg.as_dict())
    atomic_write_json(study / "plan.json", {
        "version": PLAN_VERSION, "flop_convention": cfg.flop_convention.value,
        "runs": [r.as_dict() for r in existing + new],
    })
    return new


def plan_study(study: str | Path, cfg: SweepConfig) -> list[RunSpec]:
    """Write (or add to) the study directory for ``cfg``; returns the newly planned runs."""
    cfg = resolve_config(cfg)
    return add_runs(study, cfg, plan_runs(cfg))
