"""The interface every scaling law shares, and the registry that names them.

A law is a frozen dataclass of plain numbers (so it round-trips through fits.json) with

- ``loss(n, d, unique=None)``: the loss a run of N parameters on D tokens reaches (``unique``:
  the distinct tokens among D, for laws that model repetition; others ignore it);
- ``optimum(c, k)``: the compute-optimal (N, D) for budget C with C = k N D, NaN when the law
  has no optimum (an exponent <= 0);
- ``to_dict()`` / ``Law.from_dict(method, d)``: the fits.json entry;
- ``row()`` / ``from_row()``: the compact form bootstrap samples are stored in.

``predicts_runs`` is False for a law that only knows the compute-optimal frontier (the
IsoFLOP-minima route): its ``loss(n, d)`` is the optimal loss at C = k N D, right only for runs
near the optimum, so the backtest scores it on the compute-optimal loss alone.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numpy as np

from scalinglab.errors import ScalinglabError

LAWS: dict[str, type[Law]] = {}
"""method name -> law class; filled by ``register``."""


class LawError(ScalinglabError):
    """A law that cannot be built or fitted; the message names the method and why."""


def register(cls: type[Law]) -> type[Law]:
    LAWS[cls.method] = cls
    return cls


def is_finite_number(x) -> bool:
    """A real, finite JSON number (bools are ints to isinstance, but not numbers here)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclasses.dataclass(frozen=True)
class Law:
    """Base of every law (see the module docstring)."""

    method: ClassVar[str] = ""
    title: ClassVar[str] = ""
    predicts_runs: ClassVar[bool] = True

    @classmethod
    def params(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def loss(self, n, d, unique=None):
        raise NotImplementedError

    def optimum(self, c, k: float = 6.0):
        raise NotImplementedError

    @property
    def has_optimum(self) -> bool:
        return True

    def to_dict(self) -> dict:
        return {p: getattr(self, p) for p in self.params()}

    def row(self) -> list[float]:
        return [float(getattr(self, p)) for p in self.params()]

    @classmethod
    def from_row(cls, row) -> Law:
        return cls(*(float(v) for v in row))

    @staticmethod
    def from_dict(method: str, entry: dict, where: str = "fits.json") -> Law:
        """The law ``method`` from its fits.json entry; a one-line error naming the field."""
        cls = LAWS.get(method)
        if cls is None:
            raise LawError(f"{where}: unknown law method {method!r}; known: {', '.join(LAWS)}")
        if not isinstance(entry, dict):
            raise LawError(f"{where}: {method}: expected an object, got {type(entry).__name__}")
        missing = [p for p in cls.params() if not is_finite_number(entry.get(p))]
        if missing:
            raise LawError(f"{where}: {method}: field(s) {', '.join(missing)} missing or not "
                           "finite numbers")
        return cls(**{p: float(entry[p]) for p in cls.params()})


def as_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)
