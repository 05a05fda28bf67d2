"""Document: the unit that flows through the corpus pipeline."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalinglab import io as sio


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


# ---------------------------------------------------------------- JSONL form (CORPUS/*.jsonl)


def doc_to_json(doc: Document) -> str:
    return sio.dumps({"text": doc.text, "id": doc.id, "source": doc.source,
                       "metadata": doc.metadata}, ensure_ascii=False)


def doc_from_json(line: str | bytes) -> Document:
    d = json.loads(line)
    return Document(text=d["text"], id=d["id"], source=d.get("source", "default"),
                    metadata=d.get("metadata", {}))


def read_jsonl_docs(path: Path) -> Iterator[Document]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield doc_from_json(line)


def write_jsonl_docs(path: Path, docs: Iterator[Document]) -> dict[str, int]:
    """Write ``docs`` to ``path`` atomically (all or nothing); returns {"docs", "bytes"} (UTF-8
    text bytes), the counts a part's completion marker records."""
    writer = sio.AtomicLineWriter(path)
    kept = {"docs": 0, "bytes": 0}
    for doc in docs:
        writer.write(doc_to_json(doc))
        kept["docs"] += 1
        kept["bytes"] += len(doc.text.encode("utf-8"))
    writer.commit()
    return kept
