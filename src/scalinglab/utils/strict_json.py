"""Strict JSON out: every file and line scalinglab writes parses in any JSON reader.

Python's ``json`` writes ``NaN`` / ``Infinity`` by default, which are not JSON (``jq``, browsers
and most other languages reject the file). A diverged run's losses are exactly such values, so
writers convert non-finite floats to ``null`` first and then dump with ``allow_nan=False``:
anything non-finite that slipped through fails loudly instead of writing a broken file.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite_or_none(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (numpy scalars become Python)."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``finite_or_none(value)`` that refuses to write NaN or Infinity."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
