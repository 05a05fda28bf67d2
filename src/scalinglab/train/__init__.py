"""Single-process training: ``TrainConfig``, ``Trainer``, ``train(cfg)``, ``plan_run(cfg)``.

Names are imported lazily (PEP 562) so that ``scalinglab.train.config`` stays importable
without loading torch (the CLI builds configs before it decides to train).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "scalinglab.train.config",
    "Trainer": "scalinglab.train.trainer",
    "RunPlan": "scalinglab.train.trainer",
    "train": "scalinglab.train.trainer",
    "plan_run": "scalinglab.train.trainer",
    "load_model": "scalinglab.train.checkpoint",
    "export_model": "scalinglab.train.checkpoint",
    "TokenWindows": "scalinglab.train.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scalinglab.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
