"""Clean/dirty split of a task's examples by the corpus stage's 13-gram index (GPT-3 §4).

The index is ``scalinglab.data.ngram_index.NgramIndex`` (``NgramIndex.load(path)`` and
``.dirty(text) -> bool``); anything with a ``dirty(text)`` method works here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from scalinglab.errors import ScalinglabError


class DirtyCheck(Protocol):
    def dirty(self, text: str) -> bool: ...


def load_index(path: str | Path) -> DirtyCheck:
    """Load the corpus stage's n-gram index from ``path``."""
    try:
        from scalinglab.data.ngram_index import NgramIndex
    except ImportError:
        raise ScalinglabError(
            "contamination index needs scalinglab.data.ngram_index (the corpus stage)"
        ) from None
    if not Path(path).exists():
        raise ScalinglabError(f"{path}: n-gram index not found")
    return NgramIndex.load(path)


def dirty_flags(index: DirtyCheck | None, texts: list[str]) -> list[bool] | None:
    """Per text, whether it overlaps the training corpus; None without an index."""
    if index is None:
        return None
    return [bool(index.dirty(t)) for t in texts]
