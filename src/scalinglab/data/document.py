"""Document: the unit that flows through the corpus pipeline."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Document:
    """One document of the corpus.

    Attributes:
        text: the document's text (UTF-8 decoded).
        id: a stable identifier, unique within the corpus (e.g. ``source/file:line``).
        source: name of the source it came from (used by the mixture and per-source stats).
        metadata: anything else worth keeping (license, title, original path, ...).
    """

    text: str
    id: str
    source: str = "default"
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
